"""The test bed's network load balancers: one HAProxy frontend per listener of each network
load balancer that moto's ELBv2 holds in the given regions, forwarding to the NodePorts of the
nodes of the EKS cluster whose node groups' auto scaling groups the target group is attached
to, and checking their health as the target group says (protocol, path, port, interval,
healthy and unhealthy thresholds, success codes), as an NLB does. Each load balancer gets an
address of its own on the test bed's bridge; its DNS name, as moto gives it, resolves to that
address through DIR/hosts.d/nlb (the hosts file dnsmasq and `kube-exec` read).

    nlb.py --dir DIR --moto URL --regions R1,R2 [--once]

DIR is a kube-up directory: the node of cluster C is DIR/clusters/C/node/env. It polls moto
every second; a changed configuration reloads HAProxy (master-worker mode, SIGUSR2, so its
PID stays the one in DIR/nlb/haproxy.pid).

With every target unhealthy it routes to all of them, as an NLB does ("fail open"): each
server is also a backup without a check.

Limits: TCP listeners only (what vaultform creates); targets are whole clusters' nodes (the
instance targets the auto scaling groups register on AWS), not moto's instance IDs; cross-zone
is always on.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time

import boto3

BRIDGE = "vfkbr0"
NET = "10.250"


def node_ips(dir_, cluster):
    env = os.path.join(dir_, "clusters", cluster, "node", "env")
    try:
        with open(env) as f:
            values = dict(line.strip().split("=", 1) for line in f if "=" in line)
    except FileNotFoundError:
        return []
    return [values["node_ip"]]


def clusters_by_asg(session, region):
    eks = session.client("eks", region_name=region)
    found = {}
    for name in eks.list_clusters().get("clusters", []):
        for group in eks.list_nodegroups(clusterName=name).get("nodegroups", []):
            ng = eks.describe_nodegroup(clusterName=name, nodegroupName=group)["nodegroup"]
            for asg in ng.get("resources", {}).get("autoScalingGroups", []):
                found[asg["name"]] = name
    return found


def desired(session, dir_, regions):
    """Every listener of every network load balancer, with its backend's servers and checks."""
    lbs = []
    for region in regions:
        elb = session.client("elbv2", region_name=region)
        asg = session.client("autoscaling", region_name=region)
        by_asg = clusters_by_asg(session, region)
        attached = {}
        for group in asg.describe_auto_scaling_groups().get("AutoScalingGroups", []):
            for arn in group.get("TargetGroupARNs", []):
                if group["AutoScalingGroupName"] in by_asg:
                    attached.setdefault(arn, set()).add(by_asg[group["AutoScalingGroupName"]])
        for lb in elb.describe_load_balancers().get("LoadBalancers", []):
            if lb.get("Type") != "network":
                continue
            listeners = []
            for listener in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
                for action in listener.get("DefaultActions", []):
                    arn = action.get("TargetGroupArn")
                    if not arn:
                        continue
                    tg = elb.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]
                    servers = sorted(
                        ip for c in sorted(attached.get(arn, ())) for ip in node_ips(dir_, c)
                    )
                    listeners.append({
                        "port": listener["Port"],
                        "target_port": tg["Port"],
                        "servers": servers,
                        "health": {
                            "protocol": tg.get("HealthCheckProtocol", "TCP"),
                            "path": tg.get("HealthCheckPath", "/"),
                            "port": tg.get("HealthCheckPort", "traffic-port"),
                            "interval": tg.get("HealthCheckIntervalSeconds", 10),
                            "healthy": tg.get("HealthyThresholdCount", 3),
                            "unhealthy": tg.get("UnhealthyThresholdCount", 3),
                            "codes": tg.get("Matcher", {}).get("HttpCode", "200-399"),
                        },
                    })
            lbs.append({"dns": lb["DNSName"], "listeners": listeners})
    return sorted(lbs, key=lambda lb: lb["dns"])


def codes_regex(codes):
    """An NLB matcher ("200", "200-399", "200,429") as an HAProxy status regex."""
    parts = []
    for item in codes.split(","):
        if "-" in item:
            lo, hi = (int(x) for x in item.split("-"))
            parts.extend(str(c) for c in range(lo, hi + 1))
        else:
            parts.append(item.strip())
    return "^(" + "|".join(parts) + ")$"


def haproxy_config(lbs, addresses):
    out = [
        "global",
        "    maxconn 4096",
        "defaults",
        "    mode tcp",
        "    timeout connect 2s",
        "    timeout client 1h",
        "    timeout server 1h",
        "",
    ]
    for i, lb in enumerate(lbs):
        for listener in lb["listeners"]:
            name = f"lb{i}_{listener['port']}"
            h = listener["health"]
            out += [
                f"frontend {name}",
                f"    bind {addresses[lb['dns']]}:{listener['port']}",
                f"    default_backend {name}",
                f"backend {name}",
            ]
            check = ""
            if h["protocol"] in ("HTTP", "HTTPS"):
                out += [
                    f"    option httpchk GET {h['path']}",
                    f"    http-check expect rstatus {codes_regex(h['codes'])}",
                ]
                if h["protocol"] == "HTTPS":
                    check = " check-ssl verify none"
            port = "" if h["port"] == "traffic-port" else f" port {h['port']}"
            for j, ip in enumerate(listener["servers"]):
                out.append(
                    f"    server n{j} {ip}:{listener['target_port']} check{check}{port}"
                    f" inter {h['interval']}s rise {h['healthy']} fall {h['unhealthy']}"
                )
            # An NLB fails open: with every target unhealthy it routes to all of them.
            if listener["servers"]:
                out.append("    option allbackups")
            for j, ip in enumerate(listener["servers"]):
                out.append(f"    server n{j}-open {ip}:{listener['target_port']} backup")
            out.append("")
    return "\n".join(out) + "\n"


def new_address():
    while True:
        ip = f"{NET}.{random.randint(1, 250)}.{random.randint(2, 251)}"
        shown = subprocess.run(["ip", "-o", "addr", "show", "to", f"{ip}/32"],
                               capture_output=True, text=True).stdout
        if not shown.strip():
            subprocess.run(["ip", "addr", "add", f"{ip}/16", "dev", BRIDGE], check=True)
            return ip


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--moto", required=True)
    p.add_argument("--regions", required=True)
    p.add_argument("--once", action="store_true")
    args = p.parse_args()
    dir_ = os.path.abspath(args.dir)
    state = os.path.join(dir_, "nlb")
    os.makedirs(state, exist_ok=True)
    os.makedirs(os.path.join(dir_, "hosts.d"), exist_ok=True)
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test")
    os.environ["AWS_ENDPOINT_URL"] = args.moto
    regions = [r for r in args.regions.split(",") if r]
    addresses_file = os.path.join(state, "addresses.json")
    addresses = json.load(open(addresses_file)) if os.path.exists(addresses_file) else {}
    for ip in addresses.values():
        # Kept across a restart; kube-down removed them from the bridge.
        subprocess.run(["ip", "addr", "add", f"{ip}/16", "dev", BRIDGE], capture_output=True)
    cfg = os.path.join(state, "haproxy.cfg")
    haproxy = None
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        try:
            lbs = desired(session, dir_, regions)
        except Exception as e:  # moto restarting, a resource half made: next round
            print(f"nlb: reading moto: {e}", file=sys.stderr, flush=True)
            lbs = None
        if lbs is not None:
            for lb in lbs:
                if lb["dns"] not in addresses:
                    addresses[lb["dns"]] = new_address()
                    write(addresses_file, json.dumps(addresses, indent=1))

            text = haproxy_config(lbs, addresses)
            old = open(cfg).read() if os.path.exists(cfg) else None
            if text != old:
                write(cfg, text)
                if haproxy is None:
                    haproxy = subprocess.Popen(["haproxy", "-W", "-db", "-f", cfg])
                    write(os.path.join(state, "haproxy.pid"), f"{haproxy.pid}\n")
                else:
                    haproxy.send_signal(signal.SIGUSR2)
                print(f"nlb: {len(lbs)} load balancers", file=sys.stderr, flush=True)
            hosts = "".join(f"{addresses[lb['dns']]} {lb['dns']}\n" for lb in lbs)
            path = os.path.join(dir_, "hosts.d", "nlb")
            if not os.path.exists(path) or open(path).read() != hosts:
                write(path, hosts)
                # DIR/hosts is bind-mounted over /etc/hosts by kube-exec: rewritten in place
                # (the same inode), so the mount sees each change.
                with open("/etc/hosts") as f:
                    machine = f.read()
                with open(os.path.join(dir_, "hosts"), "a+") as f:
                    f.seek(0)
                    f.truncate()
                    f.write(machine + hosts)
        if args.once:
            break
        time.sleep(1)
    if haproxy is not None:
        haproxy.terminate()
        haproxy.wait(timeout=10)


if __name__ == "__main__":
    main()
