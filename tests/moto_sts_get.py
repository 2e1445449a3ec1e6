#!/usr/bin/env python3
"""GET an STS URL (a presigned EKS token's) the way EKS does, answered by moto's STS.

    python tests/moto_sts_get.py URL CLUSTER

Runs moto in-process (`mock_aws`), which serves AWS hostnames such as
https://sts.eu-west-1.amazonaws.com/ itself: moto's server mode routes a request by its
Authorization header, and a presigned URL has none (it answers as S3). Prints the HTTP status on
the first line and the body after it. moto does not check SigV4 signatures here (with IAM
authentication enabled it fails on a request without an Authorization header), so the test
checks the signature itself.
"""
import sys

import requests
from moto import mock_aws


def main():
    url, cluster = sys.argv[1], sys.argv[2]
    with mock_aws():
        r = requests.get(url, headers={"x-k8s-aws-id": cluster}, timeout=30)
    print(r.status_code)
    print(r.text)


if __name__ == "__main__":
    main()
