"""deploy/cloudformation/byoc.yaml and the Lambda front, host side (no Docker):
cfn-lint on the template; the stack created against moto in server mode on 127.0.0.1 and every
resource checked through the service APIs, then deleted; the handler's validation and its
mapping of endpoint answers, with real botocore clients (moto, Stubber, a silent socket).
The handler against a real endpoint is tests/container/test_lambda_front.py."""
from __future__ import annotations

import ast
import base64
import hashlib
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import requests
import yaml

from support import REPO, MotoServer

TEMPLATE = REPO / "deploy" / "cloudformation" / "byoc.yaml"
HANDLER = REPO / "deploy" / "lambda_front" / "handler.py"
ENDPOINT = "byoc-endpoint"
ACCOUNT, REGION = "123456789012", "us-east-1"  # moto's default account
REPOSITORIES = ("xgboost-hdfs", "sklearn-cpu")
# moto 5.2.5's CloudFormation has no model for these types: it skips them (with a warning).
MOTO_HAS_NO_MODEL = {"AWS::S3::BucketPolicy", "AWS::ApiGateway::Stage"}
# ... and its AWS::S3::Bucket applies only BucketEncryption and Tags, ignoring these properties.
BUCKET_PROPERTIES_MOTO_IGNORES = ("PublicAccessBlockConfiguration", "VersioningConfiguration",
                                  "LifecycleConfiguration", "OwnershipControls")


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt) read as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: (
    loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else
    loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else loader.construct_mapping(node)))


def _template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)


# ---- cfn-lint ------------------------------------------------------------------------------------

def _lint(path: Path) -> list[str]:
    from cfnlint.api import REGIONS, ManualArgs, lint_file

    # Errors, warnings and informational checks, in every region cfn-lint knows.
    return [f"{m.rule.id} line {m.linenumber}: {m.message}"
            for m in lint_file(path, ManualArgs(include_checks=["I"], regions=REGIONS))]


def test_template_passes_cfn_lint():
    assert _lint(TEMPLATE) == []


def test_cfn_lint_run_really_checks(tmp_path):
    """The same lint call finds a broken copy: an unknown runtime and a Ref to nothing."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE.read_text().replace("Runtime: python3.12", "Runtime: python2.1")
                      .replace("RestApiId: !Ref Api\n      StageName", "RestApiId: !Ref NoSuchApi\n      StageName"))
    found = "\n".join(_lint(broken))
    assert "python2.1" in found and "NoSuchApi" in found


def test_cfn_lint_command_line():
    """As a user runs it (exit code 0: no error, warning or informational finding)."""
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), "--include-checks", "I", "--", str(TEMPLATE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- the stack against moto ------------------------------------------------------------------------

def _code_zip(tmp: Path) -> bytes:
    """The Lambda zip as the README builds it: handler.py at the root of the archive."""
    target = tmp / "front.zip"
    subprocess.run([sys.executable, "-m", "zipfile", "-c", str(target), str(HANDLER)], check=True)
    with zipfile.ZipFile(target) as archive:
        assert archive.namelist() == ["handler.py"]  # the template's Handler: handler.lambda_handler
    return target.read_bytes()


def _parameters(values: dict) -> list[dict]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def _create_stack(moto: MotoServer, tmp: Path, name: str = "byoc", **extra_parameters: str) -> dict:
    s3, cfn = moto.client("s3"), moto.client("cloudformation")
    s3.create_bucket(Bucket="byoc-artifacts")
    code = _code_zip(tmp)
    key = f"lambda_front/handler-{hashlib.sha256(code).hexdigest()[:12]}.zip"
    s3.put_object(Bucket="byoc-artifacts", Key=key, Body=code)
    parameters = {"EndpointName": ENDPOINT, "LambdaCodeBucket": "byoc-artifacts", "LambdaCodeKey": key, **extra_parameters}
    stack_id = cfn.create_stack(StackName=name, TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_NAMED_IAM"],
                                Parameters=_parameters(parameters))["StackId"]
    cfn.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    described = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {"id": stack_id, "name": name, "code": code,
            "outputs": {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]},
            "resources": {r["LogicalResourceId"]: r for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with MotoServer() as moto:
        yield moto, _create_stack(moto, tmp_path_factory.mktemp("stack"))


def _moto_state(moto: MotoServer, service: str, model: str) -> list[dict]:
    """What moto holds, from its own state dump (for what its API responses leave out)."""
    return requests.get(f"{moto.url}/moto-api/data.json", timeout=10).json()[service][model]


def test_stack_creates_every_resource_and_output(stack):
    _, created = stack
    declared = {name: r["Type"] for name, r in _template()["Resources"].items()
                if r.get("Condition") != "OpenToAnyone"}  # the stack's default: ApiAuthorization=AWS_IAM
    expected = {name for name, kind in declared.items() if kind not in MOTO_HAS_NO_MODEL}
    assert set(created["resources"]) - {""} == expected  # moto lists a skipped resource with no id
    assert all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in created["resources"].values())
    assert set(created["outputs"]) == {"BucketName", "XgboostHdfsRepositoryUri", "SklearnCpuRepositoryUri",
                                       "SageMakerRoleArn", "ApiUrl", "FunctionName"}


def test_bucket_encrypted_private_and_tls_only(stack):
    moto, created = stack
    s3, bucket = moto.client("s3"), created["outputs"]["BucketName"]
    assert bucket == created["resources"]["Bucket"]["PhysicalResourceId"]
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    # moto does not apply these from CloudFormation; they are checked as declared (and cfn-lint
    # validated them against the resource schema above). If moto starts applying them, the
    # first assertion fails: then check them here through get_public_access_block & co.
    with pytest.raises(s3.exceptions.ClientError, match="NoSuchPublicAccessBlockConfiguration"):
        s3.get_public_access_block(Bucket=bucket)
    resources = _template()["Resources"]
    declared = resources["Bucket"]["Properties"]
    assert all(name in declared for name in BUCKET_PROPERTIES_MOTO_IGNORES)
    assert declared["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert declared["VersioningConfiguration"] == {"Status": "Enabled"}
    assert declared["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert resources["Bucket"]["DeletionPolicy"] == "Retain"
    deny = resources["BucketTlsOnly"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_ecr_repositories_scan_on_push(stack):
    moto, created = stack
    repositories = {r["repositoryName"]: r for r in moto.client("ecr").describe_repositories()["repositories"]}
    assert set(repositories) == set(REPOSITORIES)
    assert created["outputs"]["XgboostHdfsRepositoryUri"] == repositories["xgboost-hdfs"]["repositoryUri"] == \
        f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/xgboost-hdfs"
    assert created["outputs"]["SklearnCpuRepositoryUri"] == repositories["sklearn-cpu"]["repositoryUri"]
    # moto stores CloudFormation's ImageScanningConfiguration as given ({"ScanOnPush": true}) and
    # its DescribeRepositories answer then drops it; its state dump shows what it holds.
    held = {r["name"]: r for r in _moto_state(moto, "ecr", "Repository")}
    for name in REPOSITORIES:
        assert held[name]["image_scanning_configuration"] == {"ScanOnPush": True}
        assert held[name]["cf_resource_type"] == "AWS::ECR::Repository"


def _statements(iam, role: str) -> list[dict]:
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert names, f"{role} has no inline policy"
    documents = [iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"] for n in names]
    # boto3 decodes JSON policy documents; moto stores CloudFormation's inline ones as a Python
    # repr, which boto3 leaves as a string.
    documents = [ast.literal_eval(d) if isinstance(d, str) else d for d in documents]
    return [s for d in documents for s in d["Statement"]]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _trusted(iam, role: str) -> list[str]:
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    assert all(s["Action"] == "sts:AssumeRole" and s["Effect"] == "Allow" for s in trust["Statement"])
    return [p for s in trust["Statement"] for p in _as_list(s["Principal"]["Service"])]


def test_sagemaker_role_least_privilege(stack):
    moto, created = stack
    iam = moto.client("iam")
    role = iam.get_role(RoleName="byoc-sagemaker")["Role"]
    assert role["Arn"] == created["outputs"]["SageMakerRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/byoc-sagemaker"
    assert _trusted(iam, "byoc-sagemaker") == ["sagemaker.amazonaws.com"]
    assert iam.list_attached_role_policies(RoleName="byoc-sagemaker")["AttachedPolicies"] == []  # no AmazonSageMakerFullAccess

    bucket_arn = f"arn:aws:s3:::{created['outputs']['BucketName']}"
    repo_arns = {f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}" for name in REPOSITORIES}
    allowed: dict[str, set[str]] = {}
    for statement in _statements(iam, "byoc-sagemaker"):
        assert statement["Effect"] == "Allow"
        actions, resources = _as_list(statement["Action"]), _as_list(statement["Resource"])
        assert not any(a.endswith("*") for a in actions), statement
        for action in actions:
            allowed.setdefault(action, set()).update(resources)
            service = action.split(":")[0]
            if service == "s3":
                assert set(resources) <= {bucket_arn, f"{bucket_arn}/*"}, statement
            elif action == "ecr:GetAuthorizationToken":
                assert resources == ["*"]  # the registry login has no resource-level permission
            elif service == "ecr":
                assert set(resources) == repo_arns, statement
            elif service == "logs":
                assert all(r.startswith(f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/") for r in resources)
            elif action == "cloudwatch:PutMetricData":
                assert statement["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}
            else:
                pytest.fail(f"unexpected permission {action} on {resources}")
    assert allowed["s3:ListBucket"] == {bucket_arn} and allowed["s3:GetObject"] == {f"{bucket_arn}/*"}
    assert {"s3:PutObject", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "logs:PutLogEvents"} <= set(allowed)


def test_front_role_invokes_one_endpoint(stack):
    moto, created = stack
    iam = moto.client("iam")
    assert _trusted(iam, "byoc-front") == ["lambda.amazonaws.com"]
    assert iam.list_attached_role_policies(RoleName="byoc-front")["AttachedPolicies"] == []
    granted = {(a, r) for s in _statements(iam, "byoc-front") for a in _as_list(s["Action"]) for r in _as_list(s["Resource"])}
    own_logs = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/byoc-front:*"
    assert granted == {("sagemaker:InvokeEndpoint", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"),
                       ("logs:CreateLogStream", own_logs), ("logs:PutLogEvents", own_logs)}
    group = moto.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/byoc-front")["logGroups"]
    assert [(g["logGroupName"], g["retentionInDays"]) for g in group] == [("/aws/lambda/byoc-front", 30)]


def test_lambda_function(stack):
    moto, created = stack
    client = moto.client("lambda")
    config = client.get_function(FunctionName="byoc-front")["Configuration"]
    assert created["outputs"]["FunctionName"] == "byoc-front"
    assert (config["Runtime"], config["Handler"], config["Timeout"]) == ("python3.12", "handler.lambda_handler", 29)
    assert config["Role"] == f"arn:aws:iam::{ACCOUNT}:role/byoc-front"
    assert config["Environment"]["Variables"] == {"ENDPOINT_NAME": ENDPOINT}
    assert client.get_function_concurrency(FunctionName="byoc-front")["ReservedConcurrentExecutions"] == 10
    # The code is our zip from the artifacts bucket, byte for byte.
    assert config["CodeSha256"] == base64.b64encode(hashlib.sha256(created["code"]).digest()).decode()
    policy = json.loads(client.get_policy(FunctionName="byoc-front")["Policy"])
    [grant] = policy["Statement"]
    api_id = created["resources"]["Api"]["PhysicalResourceId"]
    assert grant["Principal"] == {"Service": "apigateway.amazonaws.com"} and grant["Action"] == "lambda:InvokeFunction"
    assert grant["Condition"]["ArnLike"]["AWS:SourceArn"] == f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/*/POST/predict"


def test_api_post_route_to_the_function(stack):
    moto, created = stack
    apigw = moto.client("apigateway")
    api_id = created["resources"]["Api"]["PhysicalResourceId"]
    routes = {r["path"]: r.get("resourceMethods", {}) for r in apigw.get_resources(restApiId=api_id)["items"]}
    assert set(routes) == {"/", "/predict"} and routes["/"] == {}
    assert set(routes["/predict"]) == {"POST"}
    method = apigw.get_method(restApiId=api_id, resourceId=created["resources"]["PredictResource"]["PhysicalResourceId"],
                              httpMethod="POST")
    assert method["authorizationType"] == "AWS_IAM"
    integration = method["methodIntegration"]
    assert (integration["type"], integration["httpMethod"]) == ("AWS_PROXY", "POST")
    assert integration["uri"] == (f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
                                  f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:byoc-front/invocations")
    [deployment] = apigw.get_deployments(restApiId=api_id)["items"]
    assert deployment["description"] == "POST /predict, callers sign (AWS_IAM)"
    # moto 5.2.5 has no AWS::ApiGateway::Stage: the stage is checked as declared.
    stage = _template()["Resources"]["ApiStage"]["Properties"]
    assert stage["StageName"] == "StageName" and stage["MethodSettings"][0]["ThrottlingRateLimit"] == 50
    assert created["outputs"]["ApiUrl"] == f"https://{api_id}.execute-api.{REGION}.amazonaws.com/v1/predict"


def test_auth_change_reaches_the_stage(tmp_path):
    """ApiAuthorization NONE -> AWS_IAM must make a new deployment (the snapshot a stage serves) and
    point the stage at it; with one fixed deployment the method changed but the stage kept serving
    the open snapshot. moto makes the new deployment; its CloudFormation neither applies the
    method's update nor models the stage, so those are checked as declared."""
    with MotoServer() as moto:
        created = _create_stack(moto, tmp_path, name="byoc-auth", ApiAuthorization="NONE")
        cfn, apigw = moto.client("cloudformation"), moto.client("apigateway")
        api_id = created["resources"]["Api"]["PhysicalResourceId"]
        assert "ApiDeploymentNone" in created["resources"] and "ApiDeploymentAwsIam" not in created["resources"]
        before = {d["id"]: d["description"] for d in apigw.get_deployments(restApiId=api_id)["items"]}
        assert list(before.values()) == ["POST /predict, no authorization (NONE)"]

        parameters = {p["ParameterKey"]: p["ParameterValue"]
                      for p in cfn.describe_stacks(StackName="byoc-auth")["Stacks"][0]["Parameters"]}
        cfn.update_stack(StackName="byoc-auth", TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_NAMED_IAM"],
                         Parameters=_parameters({**parameters, "ApiAuthorization": "AWS_IAM"}))
        cfn.get_waiter("stack_update_complete").wait(StackName="byoc-auth", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        # (moto puts the update's new resources in place when the stack's resources are listed)
        resources = {r["LogicalResourceId"] for r in cfn.list_stack_resources(StackName="byoc-auth")["StackResourceSummaries"]}
        assert "ApiDeploymentAwsIam" in resources
        after = {d["id"]: d["description"] for d in apigw.get_deployments(restApiId=api_id)["items"]}
        new = {i: d for i, d in after.items() if i not in before}
        assert list(new.values()) == ["POST /predict, callers sign (AWS_IAM)"], after

    resources = _template()["Resources"]
    iam, open_ = resources["ApiDeploymentAwsIam"], resources["ApiDeploymentNone"]
    conditions = _template()["Conditions"]
    assert (iam["Condition"], open_["Condition"]) == ("CallersSign", "OpenToAnyone")
    assert conditions == {"CallersSign": ["ApiAuthorization", "AWS_IAM"], "OpenToAnyone": ["ApiAuthorization", "NONE"]}
    assert iam["DependsOn"] == open_["DependsOn"] == "PredictPost"  # the snapshot is taken after the method changed
    assert "StageName" not in iam["Properties"] and "StageName" not in open_["Properties"]  # the stage is ApiStage's
    assert resources["ApiStage"]["Properties"]["DeploymentId"] == ["CallersSign", "ApiDeploymentAwsIam", "ApiDeploymentNone"]
    assert resources["PredictPost"]["Properties"]["AuthorizationType"] == "ApiAuthorization"


def test_delete_stack(tmp_path):
    """Its own moto server and stack: deleting leaves no function, role, repository or log
    group behind; the bucket is kept on purpose (DeletionPolicy: Retain)."""
    with MotoServer() as moto:
        created = _create_stack(moto, tmp_path, name="byoc-delete")
        cfn = moto.client("cloudformation")
        cfn.delete_stack(StackName="byoc-delete")
        cfn.get_waiter("stack_delete_complete").wait(StackName=created["id"], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        assert cfn.describe_stacks(StackName=created["id"])["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
        assert [s["StackName"] for s in cfn.list_stacks(StackStatusFilter=["CREATE_COMPLETE"])["StackSummaries"]] == []
        with pytest.raises(cfn.exceptions.ClientError, match="does not exist"):
            cfn.describe_stacks(StackName="byoc-delete")  # by name: only live stacks

        assert moto.client("lambda").list_functions()["Functions"] == []
        assert moto.client("ecr").describe_repositories()["repositories"] == []
        assert not [r for r in moto.client("iam").list_roles()["Roles"] if r["RoleName"].startswith("byoc-delete")]
        assert moto.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/byoc-delete")["logGroups"] == []
        # (moto 5.2.5 deletes no AWS::ApiGateway::* resource with a stack, so the REST API is not checked.)
        buckets = {b["Name"] for b in moto.client("s3").list_buckets()["Buckets"]}
        assert created["outputs"]["BucketName"] in buckets


# ---- the handler, host side ---------------------------------------------------------------------------

def load_handler():
    """A fresh copy of deploy/lambda_front/handler.py (its lazily made client included)."""
    spec = importlib.util.spec_from_file_location("lambda_front_handler", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def api_event(body: str | None, method: str = "POST", base64_body: bool = False) -> dict:
    """An API Gateway REST API Lambda-proxy event (payload format 1.0), as /predict receives it."""
    if base64_body:
        body = base64.b64encode(body.encode()).decode()
    return {"resource": "/predict", "path": "/predict", "httpMethod": method,
            "headers": {"Content-Type": "application/json"}, "queryStringParameters": None,
            "requestContext": {"resourcePath": "/predict", "httpMethod": method, "stage": "v1"},
            "body": body, "isBase64Encoded": base64_body}


class NotCalled:
    def invoke_endpoint(self, **kwargs):
        raise AssertionError(f"the endpoint must not be called for a bad request: {kwargs}")


@pytest.fixture()
def handler(monkeypatch):
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    module = load_handler()
    module.runtime = NotCalled()
    return module


def _answer(result: dict) -> tuple[int, dict]:
    assert result["headers"]["Content-Type"] == "application/json"
    return result["statusCode"], json.loads(result["body"])


@pytest.mark.parametrize("body, status, message", [
    (None, 400, "empty body"),
    ("", 400, "empty body"),
    ("{data: [[1]]}", 400, "not valid JSON"),
    ('{"data": [[1, NaN]]}', 400, "NaN is not allowed"),
    ('{"rows": [[1, 2]]}', 400, 'exactly one of "data" or "instances"'),
    ('{"data": [[1]], "instances": [[1]]}', 400, 'exactly one of "data" or "instances"'),
    ('{"data": []}', 400, "non-empty list of rows"),
    ('{"data": "38,16,4"}', 400, "non-empty list of rows"),
    ('{"data": [38, 16, 4]}', 400, "row 1 is not a list"),
    ('{"data": [[38, 16, 4], []]}', 400, "row 2 is empty"),
    ('{"data": [[38, 16, 4], [1, 2]]}', 400, "row 2 has 2 columns but row 1 has 3"),
    ('{"data": [[38, 16, 4], [1, "x", 3]]}', 400, 'row 2, column 2: "x" is not a number'),
    ('{"instances": [[38, true, 4]]}', 400, "row 1, column 2: true is not a number"),
    ('[[38, 16, 4], [1, 2, [3]]]', 400, "row 2, column 3: [3] is not a number"),
    ('[[1e999, 16, 4]]', 400, "row 1, column 1"),
    # an integer float64 cannot hold (math.isfinite raised OverflowError: a 502 before)
    ('{"data": [[1, 2], [3, 1%s]]}' % ("0" * 400), 400, "row 2, column 2: an integer of 401 digits is out of range"),
    ('[[-1%s]]' % ("0" * 310), 400, "row 1, column 1: an integer of 311 digits is out of range"),
])
def test_handler_refuses_bad_bodies(handler, body, status, message):
    code, document = _answer(handler.lambda_handler(api_event(body)))
    assert code == status and message in document["error"], document


def test_handler_refuses_bad_base64_and_methods(handler):
    event = {**api_event("x"), "body": "not base64!", "isBase64Encoded": True}
    assert _answer(handler.lambda_handler(event)) == (400, {"error": "body is marked base64 but is not valid base64"})
    result = handler.lambda_handler(api_event(None, method="GET"))
    assert result["statusCode"] == 405 and result["headers"]["Allow"] == "POST"
    # HTTP API events (payload 2.0) name the method elsewhere; still only POST.
    assert handler.lambda_handler({"requestContext": {"http": {"method": "PUT"}}, "body": "[]"})["statusCode"] == 405


def test_handler_refuses_big_bodies(handler):
    rows = json.dumps({"data": [[1.0] * 100] * 1000})
    handler.MAX_BODY_BYTES = len(rows) - 1
    assert handler.lambda_handler(api_event(rows))["statusCode"] == 413
    assert handler.lambda_handler(api_event(rows, base64_body=True))["statusCode"] == 413


def _moto_endpoint_results(moto: MotoServer, *bodies: str) -> None:
    results = [{"Body": body, "ContentType": "application/json"} for body in bodies]
    requests.post(f"{moto.url}/moto-api/static/sagemaker/endpoint-results",
                  json={"account_id": ACCOUNT, "region": REGION, "results": results}, timeout=10).raise_for_status()


def test_handler_default_client_against_moto(monkeypatch):
    """No injected client: the handler makes its boto3 client on first use (here pointed at
    moto's sagemaker-runtime), keeps it, and passes the endpoint's JSON on."""
    with MotoServer() as moto:
        for key, value in moto.container_env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
        module = load_handler()
        assert module.runtime is None
        _moto_endpoint_results(moto, '{"predictions": [2.5, 3.0]}', "not json")
        assert _answer(module.lambda_handler(api_event('{"data": [[38, 16, 4], [0, 3, 6]]}'))) == (
            200, {"predictions": [2.5, 3.0]})
        client = module.runtime
        assert client.meta.service_model.service_name == "sagemaker-runtime"
        assert client.meta.config.read_timeout == 25 and client.meta.config.retries["total_max_attempts"] == 1
        code, document = _answer(module.lambda_handler(api_event('{"data": [[1, 2, 3]]}', base64_body=True)))
        assert module.runtime is client  # made once, reused by warm invocations
        assert code == 502 and "something other than JSON" in document["error"]


def _stubbed_runtime(handler, *errors: dict):
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("sagemaker-runtime", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    for error in errors:
        stubber.add_client_error("invoke_endpoint", expected_params={
            "EndpointName": ENDPOINT, "Body": '{"instances":[[38,16]]}',
            "ContentType": "application/json", "Accept": "application/json"}, **error)
    stubber.activate()
    handler.runtime = client
    return stubber


def test_handler_maps_endpoint_errors(handler):
    """Errors as botocore parses SageMaker's answers: a container's 4xx (ModelError with
    OriginalStatusCode) is the caller's, with the container's message; the rest is ours."""
    model_error = {"service_error_code": "ModelError", "http_status_code": 424,
                   "service_message": "Received client error (400) from primary with message ..."}
    stubber = _stubbed_runtime(
        handler,
        {**model_error, "modeled_fields": {"OriginalStatusCode": 400,
                                           "OriginalMessage": '{"error": "row 1 has 2 columns but the model expects 3"}'}},
        {**model_error, "modeled_fields": {"OriginalStatusCode": 415, "OriginalMessage": "unsupported type"}},
        {**model_error, "modeled_fields": {"OriginalStatusCode": 500, "OriginalMessage": '{"error": "boom"}'}},
        {"service_error_code": "ThrottlingException", "http_status_code": 400},
        {"service_error_code": "ValidationError", "http_status_code": 400,
         "service_message": f"Endpoint {ENDPOINT} of account {ACCOUNT} not found."},
    )
    event = api_event('{"data": [[38, 16]]}')
    assert _answer(handler.lambda_handler(event)) == (400, {"error": "row 1 has 2 columns but the model expects 3"})
    assert _answer(handler.lambda_handler(event)) == (415, {"error": "unsupported type"})
    assert _answer(handler.lambda_handler(event)) == (502, {"error": f"endpoint {ENDPOINT} failed: boom"})
    throttled = handler.lambda_handler(event)
    assert throttled["statusCode"] == 503 and throttled["headers"]["Retry-After"] == "1"
    assert _answer(handler.lambda_handler(event)) == (502, {"error": f"endpoint {ENDPOINT} could not be called: ValidationError"})
    stubber.assert_no_pending_responses()


def test_handler_times_out_with_504(handler, monkeypatch):
    """A real botocore client against a socket on 127.0.0.1 that accepts and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
    for key, value in (("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x"), ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(key, value)
    handler.runtime, handler.READ_TIMEOUT_S = None, 1
    start = time.monotonic()
    try:
        assert _answer(handler.lambda_handler(api_event('{"data": [[38, 16, 4]]}'))) == (
            504, {"error": f"endpoint {ENDPOINT} did not answer in time"})
    finally:
        server.close()
    assert time.monotonic() - start < 10 and accepted  # one attempt, no retries
