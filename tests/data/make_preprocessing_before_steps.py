"""One-off: outputs of the pre-refactor SpectralPreprocessor and augmenters (commit f381ebe) on tecator."""
import json
import numpy as np
from nirstream.core.datasets import load_tecator
from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor
from nirstream.core.chemometrics.augmentation import SpectralAugmenter
from nirstream.core.chemometrics.shape_augmentation import AxisWarp, BandWidth, SmoothBaseline, ChannelGain, InstrumentDifference, ShapeAugmenter

t = load_tecator()
train, test = t.split("train").X, t.split("test").X
CONFIGS = {
    "emsc2": {},
    "window_emsc2_global": {"first_nm": 860, "last_nm": 1040, "centring": "global"},
    "snv_global": {"emsc_order": None, "snv": True, "centring": "global"},
    "sg1": {"emsc_order": None, "derivative": 1},
    "sg2_snv_emsc2": {"derivative": 2, "snv": True},
    "sg1_snv_emsc1_w7": {"derivative": 1, "snv": True, "emsc_order": 1, "smoothing_window": 7, "first_nm": 900},
}
x = test[0]
hostile = np.stack([x, np.zeros_like(x), np.full_like(x, 3.2), -x, 10 * x, 0.001 * x,
                    np.linspace(2.0, 3.0, x.size), np.linspace(2.0, 3.0, x.size) ** 2, x * 1e300, x + 1e300 * (np.arange(x.size) % 2)])
inputs = np.concatenate([hostile, test[1:13]])
arrays, meta = {"inputs": inputs}, {}
for name, params in CONFIGS.items():
    p = SpectralPreprocessor(t.wavelengths, **params).fit(train)
    scalars, state_arrays = p.state()
    s = p.screen_transform(inputs)
    arrays[f"{name}.transform"] = p.transform(inputs[10:])
    arrays[f"{name}.features"] = s.features
    arrays[f"{name}.degenerate"] = s.degenerate
    arrays[f"{name}.outside"] = s.outside
    arrays |= {f"{name}.state.{k}": v for k, v in state_arrays.items()}
    meta[name] = {"params": params, "state": scalars, "details": list(s.details)}
X5, y5 = train[:5], np.arange(5.0)
arrays["spectral_augmenter"] = SpectralAugmenter(noise=0.01, n_copies=3, random_state=7).fit_resample(X5, y5)[0]
steps = [AxisWarp(), BandWidth(), SmoothBaseline(), ChannelGain(), InstrumentDifference(train[5:8] - train[8:11]), SpectralAugmenter()]
arrays["shape_augmenter"] = ShapeAugmenter(steps, n_copies=3, random_state=11).fit_resample(X5, y5)[0]
np.savez_compressed("tests/data/preprocessing_before_steps.npz", **arrays)
open("tests/data/preprocessing_before_steps.json", "w").write(json.dumps(meta, indent=1) + "\n")
