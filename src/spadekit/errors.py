"""Errors that the command line turns into a one-line message and exit code 2."""

from __future__ import annotations


class SpadekitError(Exception):
    """A problem with the user's input (a file, an option, a checkpoint) rather than a bug.

    The command line prints ``error: <message>`` and exits with :attr:`exit_code`.
    """

    exit_code = 2


class ConfigError(SpadekitError):
    """An option or preset is invalid."""


class CheckpointError(SpadekitError):
    """A checkpoint or model file is missing, corrupt, untrusted or does not fit the model."""


class DataError(SpadekitError):
    """A dataset file is missing, unreadable or inconsistent."""


class MissingWeightsError(SpadekitError):
    """Pretrained weights that a feature needs (VGG19, Inception, a segmenter) are not on disk."""


class InputTooLargeError(DataError):
    """An input picture (or a requested size) is over the limits (the studio answers 413)."""


class UnsupportedFormatError(DataError):
    """An input file is not a picture, or not in a format accepted for its role (the studio answers 415)."""
