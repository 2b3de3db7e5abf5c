"""`python -m stableviton.synthetic OUT --train N --test M`: write a synthetic dataset in VITON-HD layout."""

from .generator import main

main()
