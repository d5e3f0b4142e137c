"""Models and training: the built-in tiny VLM and its tokenizer, the encoders that embed samples, the
training loop that draws batches by mixture weights, and MergeMix (`mergemix/`), an option of that loop."""
