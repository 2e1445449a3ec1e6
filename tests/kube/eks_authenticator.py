#!/usr/bin/env python3
"""The token webhook of one test-bed API server: it accepts an EKS bearer token as EKS does.

    eks_authenticator.py --cluster NAME --address IP --port-file FILE [--sts URL]

Serves authentication.k8s.io/v1 TokenReview on http://IP:<port>/ (the port, picked by the
kernel, is written to FILE once it listens). For a token `k8s-aws-v1.<base64url URL>` it checks
what EKS's authenticator checks before it asks STS: the URL is a GetCallerIdentity on an STS
host, SigV4 in the query, `host` and `x-k8s-aws-id` among the signed headers, signed less than
15 minutes ago. Then the signature itself, with `x-k8s-aws-id: NAME`, so a token made for
another cluster is refused.

Why it checks the signature itself instead of only replaying the URL (as aws-iam-authenticator
does against real STS): moto's STS does not verify SigV4 on a presigned URL, and answers it for
a fixed default identity whoever signed it. So the secret of each access key it accepts is given
in VAULTFORM_KUBE_AWS_CREDENTIALS ("KEY:SECRET,KEY:SECRET", default "test:test", the test
bed's static credentials), and the identity comes from moto's STS `GetCallerIdentity` signed
with that same key (URL from --sts or AWS_ENDPOINT_URL). The user is the ARN, in the group
`system:masters`, as EKS maps a cluster's creator.
"""
import argparse
import datetime
import hashlib
import hmac
import json
import os
import re
import sys
import urllib.parse
from base64 import urlsafe_b64decode
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "k8s-aws-v1."
CLUSTER_HEADER = "x-k8s-aws-id"
LIFETIME = datetime.timedelta(minutes=15)
STS_HOST = re.compile(r"^sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")


class Refused(Exception):
    pass


def credentials():
    text = os.environ.get("VAULTFORM_KUBE_AWS_CREDENTIALS", "test:test")
    return dict(pair.split(":", 1) for pair in text.split(",") if ":" in pair)


def uri_encode(s):
    return urllib.parse.quote(s, safe="-_.~")


def signature(secret, scope, amz_date, canonical):
    date, region, service, _ = scope.split("/")
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def verify(token, cluster, now):
    """The access key and secret that signed `token` for `cluster`, or Refused."""
    if not token.startswith(PREFIX):
        raise Refused("not an EKS token")
    body = token[len(PREFIX):]
    try:
        url = urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except ValueError:
        raise Refused("token is not base64url")
    u = urllib.parse.urlsplit(url)
    if u.scheme != "https" or not STS_HOST.match(u.hostname or "") or u.path != "/":
        raise Refused("not an STS URL")
    pairs = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
    q = dict(pairs)
    if q.get("Action") != "GetCallerIdentity" or q.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        raise Refused("not a presigned GetCallerIdentity")
    signed = q.get("X-Amz-SignedHeaders", "").split(";")
    if "host" not in signed or CLUSTER_HEADER not in signed:
        raise Refused(f"{CLUSTER_HEADER} is not signed")
    try:
        at = datetime.datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
        key, scope = q["X-Amz-Credential"].split("/", 1)
        given = q["X-Amz-Signature"]
    except (KeyError, ValueError):
        raise Refused("incomplete signature")
    if now - at > LIFETIME or at - now > datetime.timedelta(minutes=5):
        raise Refused("token expired")
    secret = credentials().get(key)
    if secret is None:
        raise Refused("unknown access key")
    query = "&".join(
        sorted(f"{uri_encode(k)}={uri_encode(v)}" for k, v in pairs if k != "X-Amz-Signature")
    )
    host = u.netloc
    headers = {"host": host, CLUSTER_HEADER: cluster}
    if any(h not in headers for h in signed):
        raise Refused("signed header not available")
    canonical = "\n".join(
        ["GET", u.path, query]
        + [f"{h}:{headers[h]}" for h in signed]
        + ["", ";".join(signed), hashlib.sha256(b"").hexdigest()]
    )
    if not hmac.compare_digest(signature(secret, scope, q["X-Amz-Date"], canonical), given):
        raise Refused("signature does not match (another cluster's token?)")
    return key, secret, scope.split("/")[1]


def caller_arn(sts_url, key, secret, region):
    import boto3

    sts = boto3.client(
        "sts",
        endpoint_url=sts_url,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )
    return sts.get_caller_identity()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cluster", required=True)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port-file", required=True)
    p.add_argument("--sts", default=os.environ.get("AWS_ENDPOINT_URL"))
    a = p.parse_args()
    if not a.sts:
        sys.exit("eks_authenticator: --sts or AWS_ENDPOINT_URL is needed")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            token = review.get("spec", {}).get("token", "")
            status = {"authenticated": False}
            try:
                key, secret, region = verify(
                    token, a.cluster, datetime.datetime.now(datetime.timezone.utc)
                )
                who = caller_arn(a.sts, key, secret, region)
                status = {
                    "authenticated": True,
                    "user": {
                        "username": who["Arn"],
                        "uid": f"aws-iam-authenticator:{who['Account']}:{who['UserId']}",
                        "groups": ["system:masters"],
                        "extra": {"accessKeyId": [key], "arn": [who["Arn"]]},
                    },
                }
            except Refused as e:
                status["error"] = str(e)
            except Exception as e:  # STS unreachable: refuse, and say why in the log
                status["error"] = f"STS: {e}"
                print(f"eks_authenticator: {e}", file=sys.stderr, flush=True)
            out = json.dumps(
                {"apiVersion": review.get("apiVersion", "authentication.k8s.io/v1"),
                 "kind": "TokenReview", "status": status}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((a.address, 0), Handler)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, a.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
