"""Shared test helpers: a small real model on tecator, published to a real registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from nirstream.core.artifacts.bundle import write_bundle
from nirstream.core.datasets import SpectralDataset
from nirstream.core.chemometrics.domain import ApplicabilityDomain
from nirstream.core.chemometrics.spectral_preprocessor import SpectralPreprocessor
from nirstream.core.artifacts.registry import ModelRegistry


def small_model(n_inputs: int, seed: int = 0):
    """A few-hundred-weight CNN: trains in a second, same bundle path as the paper's model."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((n_inputs,)),
            keras.layers.Reshape((n_inputs, 1)),
            keras.layers.Conv1D(4, 9, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(1),
        ]
    )


def fit_small_tecator_parts(tecator: SpectralDataset, seed: int = 0, epochs: int = 5, **window):
    train = tecator.split("train", "monitor")
    preprocessor = SpectralPreprocessor(tecator.wavelengths, emsc_order=2, **window).fit(train.X)
    features = preprocessor.transform(train.X)
    domain = ApplicabilityDomain().fit(features)
    fat = train.target("fat")
    model = small_model(preprocessor.n_model_channels, seed)
    model.compile(optimizer="adam", loss="mse")
    model.fit(features, (fat - fat.mean()) / fat.std(), epochs=epochs, batch_size=32, verbose=0)
    # A fixture's intervals: calibrated on its own fitting data (a real run uses the validation split)
    from nirstream.trainer.intervals import calibrate_intervals

    fitted = model.predict(features, verbose=0).ravel() * fat.std() + fat.mean()
    intervals, _ = calibrate_intervals(fat[:, None], fitted[:, None], ("fat",), coverage=0.9)
    metadata = {"targets": ["fat"], "units": {"fat": "%"}, "target_mean": [float(fat.mean())], "target_scale": [float(fat.std())],
                "target_range": {"fat": (float(fat.min()), float(fat.max()))}, "intervals": intervals}
    return preprocessor, domain, model, metadata


def publish_small_tecator_model(registry: ModelRegistry, tecator: SpectralDataset, seed: int = 0, promote: bool = True) -> str:
    preprocessor, domain, model, metadata = fit_small_tecator_parts(tecator, seed)
    version = registry.publish(
        lambda d: write_bundle(d, model, preprocessor, domain, dataset_name="tecator", **metadata)
    )
    if promote:
        registry.promote(version, "test model")
    return version


def tamper(path: Path) -> None:
    """Flip bytes in the middle of a file, as disk corruption or an attacker would."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    path.write_bytes(bytes(data))


def as_float32(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).astype(np.float64)


def tiny_cnn(n_copies: int = 2, **params):
    """A CNNRegressor with the augment+emsc variant's steps, tiny (seconds to fit) unless ``params`` say otherwise."""
    from nirstream.trainer.cnn import CNNRegressor
    from nirstream.trainer.variants import variant_steps

    preprocessor, augmenter = variant_steps("augment+emsc", n_copies=n_copies)
    tiny = {"filters": (2,), "kernel_size": 5, "dense_units": 8, "epochs": 2, "batch_size": 64, "early_stopping_start": 0}
    return CNNRegressor(preprocessor, augmenter, **(tiny | params))


def write_jcamp(path: Path, title: str, wavelengths: np.ndarray, values: np.ndarray, wavenumbers: bool = False,
                sample_id: str | None = None) -> Path:
    """A JCAMP-DX 4.24 file in (XY..XY) form, as instruments export it; full precision (the ``jcamp`` package reads
    but its writer rounds to 4 decimals). ``sample_id`` adds a ``##$SAMPLE ID`` line."""
    x = (1e7 / wavelengths if wavenumbers else wavelengths).tolist()
    values = np.asarray(values).tolist()
    lines = [f"##TITLE={title}", "##JCAMP-DX=4.24", "##DATA TYPE=NEAR INFRARED SPECTRUM",
             *([f"##$SAMPLE ID={sample_id}"] if sample_id is not None else []),
             f"##XUNITS={'1/CM' if wavenumbers else 'NANOMETERS'}", "##YUNITS=ABSORBANCE", "##XFACTOR=1", "##YFACTOR=1",
             f"##FIRSTX={x[0]!r}", f"##LASTX={x[-1]!r}", f"##NPOINTS={len(x)}", "##XYPOINTS=(XY..XY)"]
    lines += [f"{a!r}, {b!r}" for a, b in zip(x, values, strict=True)]
    path.write_text("\n".join([*lines, "##END="]) + "\n")
    return path


async def create_topic(bootstrap: str, topic: str, partitions: int = 2) -> None:
    """Create ``topic`` by hand (plaintext), as an operator would before the service starts."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
