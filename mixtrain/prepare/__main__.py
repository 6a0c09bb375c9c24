"""`python -m mixtrain.prepare ...`: see mixtrain/prepare/pipeline.py."""

from mixtrain.prepare.pipeline import main

if __name__ == "__main__":
    main()
