"""Command line: `byoc-deploy STEP [--local] ...`; `--help` on every step.

stdout carries a step's result alone (the answer of invoke, the URI of push, ...), so that
`byoc-deploy invoke ... > out.csv` or a pipe gets just that; everything else (our progress, the
SDK's log lines, docker compose's output) goes to stderr."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import steps
from .sessions import session


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    result = {}
    for value in values or []:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"{what} {value!r} must be NAME=VALUE")
        result[key] = item
    return result


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--local", action="store_true", help="SageMaker local mode: Docker on this machine, no AWS calls")
    parser.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    parser.add_argument("--role", help="SageMaker execution role ARN (cloud)")
    parser.add_argument("--local-port", type=int, default=8080,
                        help="local mode: the port local endpoints serve on, on 127.0.0.1 (default 8080)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="byoc-deploy", description=__doc__)
    sub = parser.add_subparsers(dest="step", required=True)

    p = sub.add_parser("push", help="push a local image to ECR and print its URI")
    p.add_argument("image", help="local image, e.g. xgboost-hdfs:latest")
    p.add_argument("--repository", help="ECR repository name (default: the image name)")
    p.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    p.add_argument("--registry-endpoint", help="registry host[:port] instead of the one ECR names "
                                               "(also BYOC_REGISTRY_ENDPOINT)")

    p = sub.add_parser("train", help="run a training job")
    _common(p)
    p.add_argument("--image", required=True, help="image URI (local mode: a local image such as xgboost-hdfs:latest)")
    p.add_argument("--channel", action="append", required=True, metavar="NAME=PATH",
                   help="input channel: a local folder, file:// or s3:// prefix (repeatable)")
    p.add_argument("--hyperparameter", "-p", action="append", metavar="NAME=VALUE")
    p.add_argument("--instance-type", default=None, help=f"default {steps.DEFAULT_INSTANCE} (local mode: local)")
    p.add_argument("--instance-count", type=int, default=1)
    p.add_argument("--output-path", help="s3:// (cloud) or a folder (local); default: the session bucket / .byoc-local/output")
    p.add_argument("--spot", action="store_true", help="managed spot training (cloud)")
    p.add_argument("--max-run", type=int, default=3600, help="seconds (default 3600)")
    p.add_argument("--max-wait", type=int, help="seconds, spot only (default 2 x max-run)")
    p.add_argument("--checkpoint-s3-uri", help="where spot training checkpoints go (cloud)")

    p = sub.add_parser("deploy", help="create a real-time endpoint")
    _common(p)
    p.add_argument("--image", required=True)
    p.add_argument("--model-data", required=True, help="model.tar.gz: s3:// or a local file")
    p.add_argument("--endpoint-name")
    p.add_argument("--instance-type", default=None, help=f"default {steps.DEFAULT_INSTANCE}")
    p.add_argument("--env", action="append", metavar="NAME=VALUE", help="container environment (repeatable)")

    p = sub.add_parser("invoke", help="send one request to an endpoint")
    _common(p)
    p.add_argument("--endpoint-name", required=True)
    p.add_argument("--content-type", default="text/csv")
    p.add_argument("--accept")
    p.add_argument("--body", required=True, help="the body, or @FILE to read it from a file")

    p = sub.add_parser("transform", help="batch transform: one output line per input line")
    _common(p)
    p.add_argument("--image", required=True)
    p.add_argument("--model-data", required=True)
    p.add_argument("--input", required=True, help="s3:// prefix or local folder/file")
    p.add_argument("--output", required=True, help="s3:// prefix or local folder")
    p.add_argument("--content-type", default="text/csv")
    p.add_argument("--accept")
    p.add_argument("--instance-type", default=None)
    p.add_argument("--env", action="append", metavar="NAME=VALUE")

    p = sub.add_parser("register", help="register a model package (model registry)")
    _common(p)
    p.add_argument("--image", required=True)
    p.add_argument("--model-data", required=True)
    p.add_argument("--group", required=True, help="model package group (created when missing)")
    p.add_argument("--approval-status", default="PendingManualApproval",
                   choices=["PendingManualApproval", "Approved", "Rejected"])

    p = sub.add_parser("teardown", help="delete an endpoint, its config and model, and a bucket folder; "
                                        "lists them and asks first")
    _common(p)
    p.add_argument("--endpoint-name", help="the endpoint (local mode: its containers, and only those)")
    p.add_argument("--bucket", help="delete objects of this bucket under --prefix (cloud)")
    p.add_argument("--prefix", help="a folder of the bucket: 'byoc' means byoc/ (never byoc-prod/)")
    p.add_argument("--yes", action="store_true", help="delete without asking (needed when stdin is not a terminal)")
    p.add_argument("--dry-run", action="store_true", help="list everything that would be deleted, delete nothing")
    return parser


def _result_stream():
    """The real stdout, for the step's result; file descriptor 1 becomes stderr for the rest of
    the process, so that whatever else writes there (the SDK, its threads, docker compose started
    by it) goes to stderr."""
    sys.stdout.flush()
    result = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return result


def _asker(yes: bool):
    def confirm(plan) -> bool:
        if yes:
            return True
        if not sys.stdin or not sys.stdin.isatty():
            raise SystemExit("byoc-deploy: nothing deleted: stdin is not a terminal, so nobody can confirm; "
                             "pass --yes (or --dry-run to list only)")
        sys.stderr.write("delete all of the above? [y/N] ")
        sys.stderr.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")
    return confirm


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)  # --help and usage errors before the switch
    result = _result_stream()
    try:
        _run(args, result)
    except (LookupError, ValueError) as exc:
        raise SystemExit(f"byoc-deploy {args.step}: {exc}") from None
    finally:
        result.flush()


def _run(args, result) -> None:
    if args.step == "push":
        from .ecr import push

        result.write(push(args.image, args.repository, args.region, args.registry_endpoint) + "\n")
        return
    sess = session(args.local, args.region, args.local_port)
    if args.step == "train":
        estimator = steps.train(sess, args.image, _pairs(args.channel, "--channel"),
                                _pairs(args.hyperparameter, "--hyperparameter"), role=args.role,
                                instance_type=args.instance_type, instance_count=args.instance_count,
                                output_path=args.output_path, spot=args.spot, max_run=args.max_run,
                                max_wait=args.max_wait, checkpoint_s3_uri=args.checkpoint_s3_uri)
        result.write(f"{estimator.model_data}\n")
    elif args.step == "deploy":
        predictor = steps.deploy(sess, args.image, args.model_data, args.endpoint_name, args.instance_type, args.role,
                                 _pairs(args.env, "--env"))
        result.write(f"{predictor.endpoint_name}\n")
        result.flush()
        if args.local:  # the SDK's docker-compose keeps this process (and the endpoint) in the foreground
            steps._say(f"serving {predictor.endpoint_name} on http://127.0.0.1:{args.local_port} until Ctrl+C "
                       f"here or `byoc-deploy teardown --local --endpoint-name {predictor.endpoint_name}` elsewhere")
    elif args.step == "invoke":
        body = Path(args.body[1:]).read_bytes() if args.body.startswith("@") else args.body.encode()
        payload, kind = steps.invoke(sess, args.endpoint_name, body, args.content_type, args.accept)
        result.flush()
        result.buffer.write(payload)  # the bytes as the endpoint sent them
    elif args.step == "transform":
        result.write(steps.transform(sess, args.image, args.model_data, args.input, args.output, args.content_type,
                                     args.accept, args.instance_type, args.role, _pairs(args.env, "--env")) + "\n")
    elif args.step == "register":
        result.write(steps.register(sess, args.image, args.model_data, args.group, args.approval_status) + "\n")
    elif args.step == "teardown":
        if args.bucket and not args.prefix:
            raise ValueError("--bucket needs --prefix, the folder to delete")
        steps.teardown(sess, args.endpoint_name, args.bucket, args.prefix, confirm=_asker(args.yes),
                       dry_run=args.dry_run)
