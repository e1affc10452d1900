"""What the program asks of AWS, and what it knows of AWS without asking: every look-up in one place.

Offline, from the AWS SDK's own data: botocore (installed with boto3, pinned by the lock) ships the partitions and
their regions (data/endpoints.json) and the EC2 API model, whose `InstanceType` enum lists every type name EC2 knew
when that botocore was released (data/ec2/<date>/service-2.json). The settings check names against them before AWS
is asked anything, so a typo is refused with the closest real name, offline as in a deploy.

Asked of AWS (read-only invokes, no resources): an instance type's memory and architectures (the settings, before
any resource) and the official images (ami). What neither can say (which zones a region has, which zone offers a
type, an existing VPC's subnets) is asked by the program (components/network.py); offline, the mocks assume it and
say so (tools/assumed.py).
"""

from __future__ import annotations

import difflib
import functools
import re
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:
    import pulumi

# The commercial partition: the official Debian and Ubuntu images the program looks up (ami, below) are
# published there; aws-cn, aws-us-gov and the isolated partitions need other accounts, images and endpoints.
PARTITION = "aws"
# The commercial partition's regionRegex in endpoints.json.
REGION = r"(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+"
SIZE = r"(nano|micro|small|medium|large|\d*xlarge|metal(-\d+xl)?)"
FAMILY = r"(?P<series>[a-z]+)(?P<generation>\d+)(?P<options>[a-z]*)(?P<suffix>-[a-z0-9]+)?"


class UnknownName(ValueError):
    """A name AWS's SDK does not know: the text says what is allowed (and the closest known name)."""


@functools.lru_cache(maxsize=None)
def _loader():
    import botocore.loaders

    return botocore.loaders.create_loader()


def sdk_version() -> str:
    import botocore

    return f"botocore {botocore.__version__}"


@functools.lru_cache(maxsize=None)
def partitions() -> dict[str, tuple[str, ...]]:
    """partition name -> its region names, from botocore's endpoints.json."""
    data = _loader().load_data("endpoints")
    return {p["partition"]: tuple(sorted(p["regions"])) for p in data["partitions"]}


def regions() -> tuple[str, ...]:
    """The commercial partition's regions."""
    return partitions()[PARTITION]


@functools.lru_cache(maxsize=None)
def instance_types() -> frozenset[str]:
    """Every EC2 instance type name of the SDK's EC2 model (the InstanceType enum)."""
    model = _loader().load_service_model("ec2", "service-2")
    return frozenset(model["shapes"]["InstanceType"]["enum"])


def _closest(value: str, names) -> Optional[str]:
    close = difflib.get_close_matches(value, sorted(names), n=1, cutoff=0.6)
    return close[0] if close else None


def check_region(region: Optional[str]) -> str:
    """The region, or UnknownName saying why not. An empty or missing region is refused too: a stack that leaves
    it to the environment (AWS_REGION, a profile) deploys wherever the operator's shell points."""
    if not region:
        raise UnknownName("set it in the stack (`pulumi config set aws:region eu-central-1`), so that every run, a "
                          "laptop's or CI's, deploys to the same region; AWS_REGION in one shell is not enough")
    if region in regions():
        return region
    other = next((p for p, names in partitions().items() if region in names), None)
    if other:
        raise UnknownName(f"it is a region of the {other} partition; this program deploys to the commercial partition "
                          f"({PARTITION}) only, where the images it uses are published")
    close = _closest(region, regions())
    hint = f"; did you mean {close}?" if close else f"; the regions are {', '.join(regions())}"
    if close and re.fullmatch(REGION, region):  # AWS opens regions now and then: the SDK learns them in an update
        hint = f" (a region opened since is known once boto3 is upgraded){hint}"
    raise UnknownName(f"it is not a region of AWS ({sdk_version()}'s list){hint}")


def _family(name: str) -> str:
    return name.split(".", 1)[0]


def check_instance_type(value: str) -> Optional[str]:
    """None when the SDK knows the type; a warning when it looks newer than the SDK's list; UnknownName otherwise.

    Newer or a typo? A type newer than the SDK's list is a standard size of a generation beyond the newest the SDK
    knows for that series (m9i.large when m8 is the newest m): AWS launches new generations, rarely new sizes or
    variants of a launched one. Everything else that is not in the list (a size that is no size, a family or size
    that the list does not have) is refused with the closest known name: that is how typos look (c6i.xlage)."""
    known = instance_types()
    if value in known:
        return None
    family, _, size = value.partition(".")
    close = _closest(value, [t for t in known if _family(t) == family] or known) or _closest(value, known)
    hint = f"; did you mean {close}?" if close else ""
    parsed = re.fullmatch(FAMILY, family)
    if re.fullmatch(SIZE, size) and parsed:
        series, generation = parsed["series"], int(parsed["generation"])
        newest = max((int(m["generation"]) for t in known if (m := re.fullmatch(FAMILY, _family(t)))
                      and m["series"] == series), default=None)
        if newest is not None and generation > newest:
            return (f"{value} is not in {sdk_version()}'s list of EC2 instance types, whose newest {series} generation "
                    f"is {newest}: taken as a type launched since; AWS refuses it at deploy if it does not exist")
    sizes = sorted({t.split(".", 1)[1] for t in known if _family(t) == family}, key=_size_order)
    if sizes:
        raise UnknownName(f"{family} comes in {', '.join(sizes)} ({sdk_version()}){hint}")
    raise UnknownName(f"it is not an EC2 instance type ({sdk_version()}'s list){hint}")


def _size_order(size: str) -> tuple:
    fixed = ["nano", "micro", "small", "medium", "large", "xlarge"]
    if size in fixed:
        return (0, fixed.index(size), 0)
    match = re.fullmatch(r"(\d+)xlarge", size)
    if match:
        return (0, len(fixed), int(match.group(1)))
    return (1, 0, int(re.sub(r"\D", "", size) or 0))


class LookupFailed(Exception):
    """AWS could not answer (credentials, permissions, throttling): not the same as "no such type"."""


ShapeLookup = Callable[[str], Optional[tuple[float, list[str]]]]


def aws_instance_shape(instance_type: str, opts: Optional[pulumi.InvokeOptions] = None,
                       ) -> Optional[tuple[float, list[str]]]:
    """Memory (GiB) and architectures of an EC2 type, from AWS; None when AWS does not know the type.
    opts: the AWS provider to ask (a WallarmDeployment's); None, the default provider."""
    import pulumi_aws as aws  # imported when asked: the settings' offline readers (tools/) need no provider SDK

    try:
        info = aws.ec2.get_instance_type(instance_type=instance_type, opts=opts)
    except Exception as exc:  # the provider answers every failure with an error; tell them apart by AWS's code
        text = str(exc).strip()
        if re.search(r"InvalidInstanceType|does not exist|no matching EC2 Instance Type", text):
            return None
        reason = text.splitlines()[-1] if text else type(exc).__name__
        if "size unknown offline" in reason:  # the mocks (harness/mocks.py), not AWS
            raise LookupFailed(reason[reason.index("size unknown offline"):].removesuffix(" (instanceType)")) from None
        raise LookupFailed(f"AWS could not be asked about it ({reason}); check the credentials, the "
                           "ec2:DescribeInstanceTypes permission and the region, then run again") from None
    return info.memory_size / 1024, list(info.supported_architectures)


# Official image owners and name patterns, per OS and installer architecture.
IMAGES = {
    "debian-12": ("136693071363", {"x86_64": "debian-12-amd64-*", "aarch64": "debian-12-arm64-*"}),
    "ubuntu-24.04": ("099720109477", {
        "x86_64": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
        "aarch64": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-*",
    }),
}


def ami(os: str, arch: str, ami_id: Optional[str] = None, opts: Optional[pulumi.InvokeOptions] = None) -> str:
    """The AMI for an architecture: `ami_id` when set (amiId, for the nodes, not the jump host), else the newest
    official image of `os`. A running node keeps its image when a newer one is published (components/host.py);
    a new machine takes the one named here. opts: the AWS provider to ask (a WallarmDeployment's)."""
    if ami_id:
        return ami_id
    import pulumi_aws as aws

    owner, names = IMAGES[os]
    return aws.ec2.get_ami(
        owners=[owner], most_recent=True,
        filters=[{"name": "name", "values": [names[arch]]}, {"name": "architecture",
                                                            "values": ["arm64" if arch == "aarch64" else "x86_64"]}],
        opts=opts).id
