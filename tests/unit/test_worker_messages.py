"""What a user reads when the model worker ends: one sentence, the worker's last words worth reading,
never its progress bars (``worker.client.last_words``)."""

from model_backend.worker.client import last_words

LOADING = ["Loading weights:   0%|          | 0/70 [00:00<?, ?it/s]",
           "Loading weights: 100%|███| 70/70 [00:01<00:00, 51.2it/s]",
           "model.safetensors:  43%|████▎     | 1.72G/4.00G [00:31<00:41, 55.1MB/s]"]


def test_progress_bars_are_never_last_words():
    assert last_words(LOADING) == ""
    assert last_words(LOADING + ["Fetching 2 files from the hub"]) == "Fetching 2 files from the hub"


def test_the_error_is_picked_over_later_noise():
    lines = LOADING + ["Traceback (most recent call last):", '  File "x.py", line 3, in <module>',
                       "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
                       "Loading weights: 100%|███| 70/70 [00:01<00:00, 51.2it/s]", "exiting"]
    assert last_words(lines).startswith("torch.OutOfMemoryError: CUDA out of memory")


def test_long_lines_are_cut_and_blank_ones_skipped():
    assert last_words(["", "   ", "x" * 500]) == "x" * 200
    assert last_words([]) == ""
