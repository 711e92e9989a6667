"""``python -m diet_np`` is the ``diet-np`` command."""
import sys

from .cli import main

sys.exit(main())
