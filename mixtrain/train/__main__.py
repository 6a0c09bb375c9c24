"""`python -m mixtrain.train ...`: see mixtrain/train/run.py."""

from mixtrain.train.run import main

if __name__ == "__main__":
    main()
