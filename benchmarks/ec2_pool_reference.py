"""The references for ec2_pool_benchmark: the same EC2 calls that bitfusion's aws:// provisioner
makes to bring up and tear down a pool, one after another (concurrency 1), to the same moto
server:

  DescribeInstanceTypes(type), RunInstances(MinCount = MaxCount = N, the same tags, a
  ClientToken), DescribeInstances(InstanceId) for each instance, DeleteTags (the hand-over),
  TerminateInstances(all)

--client boto3 makes them with boto3 in this process and prints {"wall_s": ...}, timed from
after the client exists to the last answer. --client awscli starts one `aws ec2 ...` process
per call and prints {"wall_s": ...} over all of them. Credentials and endpoint come from the
environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL).

  ec2_pool_reference.py --client boto3|awscli --count N --type t3.micro --image AMI
"""
import argparse
import json
import os
import subprocess
import sys
import time
import uuid

TAGS = ["bitfusion.creator", "bitfusion.run_id", "bitfusion.host", "bitfusion.pid",
        "bitfusion.pid_start", "bitfusion.boot_id", "bitfusion.expires", "bitfusion.client_token"]


def tags():
    now = int(time.time())
    values = ["bitfusion", "bench", os.uname().nodename, str(os.getpid()), "1", "boot",
              str(now + 4 * 3600), "tok"]
    return [{"Key": k, "Value": v} for k, v in zip(TAGS, values)]


def with_boto3(args):
    import boto3
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    start = time.monotonic()
    ec2.describe_instance_types(InstanceTypes=[args.type])
    made = ec2.run_instances(ImageId=args.image, InstanceType=args.type, MinCount=args.count,
                             MaxCount=args.count, ClientToken=str(uuid.uuid4()),
                             TagSpecifications=[{"ResourceType": "instance", "Tags": tags()}])
    ids = [i["InstanceId"] for i in made["Instances"]]
    for i in ids:
        ec2.describe_instances(InstanceIds=[i])
    ec2.delete_tags(Resources=ids, Tags=[{"Key": k} for k in TAGS[3:6]])
    ec2.terminate_instances(InstanceIds=ids)
    return time.monotonic() - start


def with_awscli(args):
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": ""}

    # The CLI installed beside this Python (the image's pyenv has awscli), else the one on PATH.
    beside = os.path.join(os.path.dirname(sys.executable), "aws")
    cli = beside if os.access(beside, os.X_OK) else "aws"

    def aws(*call):
        out = subprocess.run([cli, "--endpoint-url", os.environ["AWS_ENDPOINT_URL"], "ec2", *call,
                              "--output", "json"], env=env, capture_output=True, text=True,
                             check=True)
        return json.loads(out.stdout) if out.stdout.strip() else {}

    start = time.monotonic()
    aws("describe-instance-types", "--instance-types", args.type)
    made = aws("run-instances", "--image-id", args.image, "--instance-type", args.type, "--count",
               str(args.count), "--client-token", str(uuid.uuid4()), "--tag-specifications",
               json.dumps([{"ResourceType": "instance", "Tags": tags()}]))
    ids = [i["InstanceId"] for i in made["Instances"]]
    for i in ids:
        aws("describe-instances", "--instance-ids", i)
    aws("delete-tags", "--resources", *ids, "--tags", *[f"Key={k}" for k in TAGS[3:6]])
    aws("terminate-instances", "--instance-ids", *ids)
    return time.monotonic() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--client", choices=["boto3", "awscli"], required=True)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--type", default="t3.micro")
    p.add_argument("--image", required=True)
    args = p.parse_args()
    wall = with_boto3(args) if args.client == "boto3" else with_awscli(args)
    print(json.dumps({"wall_s": wall}))


if __name__ == "__main__":
    main()
