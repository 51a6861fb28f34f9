"""Result files carry the commit, the command, the seeds, the date and the machine that produced them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nirstream.core.provenance import write_result

ROOT = Path(__file__).resolve().parents[1]


def test_a_result_file_names_its_commit_command_and_seeds(tmp_path):
    path = write_result(tmp_path / "deep" / "result.json", {"rmsep": 1.5}, seeds=[0, 3],
                        argv=["python", "benchmarks/x.py", "--seeds", "0", "3"])
    written = json.loads(path.read_text())
    assert written["rmsep"] == 1.5
    assert written["provenance"]["seeds"] == [0, 3]
    assert written["provenance"]["command"] == "python benchmarks/x.py --seeds 0 3"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert written["provenance"]["commit"].split("+")[0] == head
    assert written["provenance"]["written_at"].startswith("20")
    assert written["provenance"]["machine"]["cpu_count"] >= 1 and written["provenance"]["machine"]["platform"]


def test_a_script_run_records_its_own_command_line(tmp_path):
    script = tmp_path / "bench.py"
    script.write_text("from pathlib import Path\nfrom nirstream.core.provenance import write_result\n"
                      f"write_result(Path({str(tmp_path / 'out.json')!r}), {{}})\n")
    subprocess.run([sys.executable, str(script), "--rate", "20"], check=True, capture_output=True)
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["provenance"]["command"] == f"python {script} --rate 20"
    assert written["provenance"]["seeds"] is None
