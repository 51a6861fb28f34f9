"""The README's publisher example works as written and produces what the worker decodes."""

import re
import subprocess
import sys
from pathlib import Path

from nirstream.core.messages.codec import decode_spectrum
from tests.streaming import collect, run

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_publisher_example_produces_a_decodable_binary_spectrum(broker, tmp_path):
    block = next(b for b in python_blocks() if "def encode_binary" in b)
    script = tmp_path / "publisher.py"
    script.write_text(block.replace("127.0.0.1:9092", broker.bootstrap_servers))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    messages = run(collect(broker.bootstrap_servers, "nirstream.spectra", 1))
    spectrum = decode_spectrum(messages[-1].value)
    assert spectrum.header.analyzer_id == "line-1" and spectrum.header.grid.count == 650
    assert spectrum.values.shape == (650,)
