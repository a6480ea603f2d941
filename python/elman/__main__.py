"""Command line of elman: ``python -m elman bench [options]``."""

import argparse
import sys

from elman import benchmark


def make_parser():
    parser = argparse.ArgumentParser(
        prog="python -m elman",
        description="Tools that come with elman, the simple recurrent (Elman) layer.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = commands.add_parser(
        "bench", help="time elman against NumPy, PyTorch, ONNX Runtime, JAX and Keras",
        description="Check elman and every installed peer against the float64 oracle, "
                    "then time them on the same weights and inputs. Progress goes to "
                    "stderr, a Markdown table to stdout; JSON, CSV, Markdown and (with "
                    "matplotlib) a PNG plot go to the output folder.")
    benchmark.add_arguments(bench)
    bench.set_defaults(run=benchmark.main)
    return parser


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
