"""The library's own error classes.

Everything diet_np raises for a problem the user can fix (a bad argument, a
missing or damaged file, a run that diverged) derives from :class:`DietError`.
The command line turns exactly these into one-line messages; any other
exception is a bug and keeps its traceback.
"""
from __future__ import annotations


class DietError(Exception):
    """Base class of diet_np's user-facing errors."""


class ConfigError(DietError, ValueError):
    """An invalid hyper-parameter or option."""


class RunError(DietError, ValueError):
    """A run folder or output path that cannot be used as asked (it exists, it is a
    file, it is not writable, it belongs to another run...)."""


class ParameterError(DietError, ValueError):
    """Parameters, an input batch or an argument that a network or optimiser cannot
    use: a wrong shape, a value out of range (a leak outside [0, 1], a momentum of 1)."""


class ParameterTypeError(DietError, TypeError):
    """Parameters, an input batch or an argument of the wrong type or dtype."""


class ParameterKeyError(DietError, KeyError):
    """Parameters whose names do not match the network's."""

    def __str__(self):                     # KeyError's own str() quotes the message
        return str(self.args[0]) if self.args else ""


class ResourceError(DietError, MemoryError):
    """Arrays that cannot fit in this machine's memory, refused before they are made."""


class DivergenceError(DietError):
    """Training produced a non-finite loss, parameter or optimiser state."""


class ChanceLevelError(DietError):
    """A network that stayed at chance level, where a trained one is needed."""


def chance_level(num_classes: int) -> float:
    """The accuracy under which a network counts as untrained: 1.5x chance.

    The authors' ``ann.py`` gives up on a CIFAR-10 run whose test accuracy is
    under 15% (1.5 / 10) after 30 epochs; we use the same factor for any number
    of classes.
    """
    return 1.5 / num_classes
