"""Models and training: the model backends (`backends/`: the built-in tiny VLM and any transformers
image-text-to-text model) and where they run (`device.py`), the tiny VLM and its tokenizer, the encoders that
embed samples, the training loop that draws batches by mixture weights, and MergeMix (`mergemix/`), an option
of that loop."""
