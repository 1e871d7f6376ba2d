"""Child process of artifacts.to_ubjson: a legacy binary XGBoost model on stdin -> UBJSON on stdout.

Usage: python legacy_convert.py LEGACY_XGBOOST_DIR < model > model.ubj
The XGBoost in LEGACY_XGBOOST_DIR (2.1.4, the last to read the legacy binary format) comes first
on sys.path; the image's numpy and scipy serve it. Errors: one line on stderr, exit 1.
"""
import sys

sys.path.insert(0, sys.argv[1])
out, sys.stdout = sys.stdout.buffer, sys.stderr  # XGBoost prints its log lines: keep them out of the model
import xgboost  # noqa: E402 (after the path)

SERIALISED = b"CONFIG-"  # how 1.0-1.2 pickles hold the model: its config, then the binary model


def main() -> int:
    model = bytearray(sys.stdin.buffer.read())
    try:
        if model.startswith(SERIALISED):
            booster = xgboost.Booster.__new__(xgboost.Booster)
            booster.__setstate__({"handle": model})  # XGBoosterUnserializeFromBuffer
        else:
            booster = xgboost.Booster()
            booster.load_model(model)
        out.write(booster.save_raw(raw_format="ubj"))
    except xgboost.core.XGBoostError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        print(f"XGBoost {xgboost.__version__}: {lines[0] if lines else exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
