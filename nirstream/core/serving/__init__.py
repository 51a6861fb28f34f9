"""The served model: prediction of a batch from a bundle (ONNX Runtime or Keras), CPU thread limits."""
