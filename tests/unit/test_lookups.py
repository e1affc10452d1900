"""components/lookups.py: region and instance type names from the AWS SDK's own data (botocore), offline."""

from __future__ import annotations

import pytest

from components import lookups


def test_regions_are_the_commercial_partitions_from_botocore():
    """Guards against a hand-kept list: the regions are botocore's `aws` partition, and no other partition's."""
    import botocore.loaders

    data = botocore.loaders.create_loader().load_data("endpoints")
    [aws] = [p for p in data["partitions"] if p["partition"] == "aws"]
    assert set(lookups.regions()) == set(aws["regions"]) and "us-east-1" in lookups.regions()
    assert not {"cn-north-1", "us-gov-west-1"} & set(lookups.regions())


@pytest.mark.parametrize("region,words", [
    ("eu-central1", ["did you mean eu-central-1?"]),
    ("mars-1", ["not a region of AWS", "eu-central-1, eu-central-2"]),
    ("us-gov-west-1", ["aws-us-gov partition"]),
    ("", ["pulumi config set aws:region"]),
])
def test_a_wrong_region_says_what_is_allowed(region, words):
    """Guards against a region typo deploying nowhere (or planning with exit 0)."""
    with pytest.raises(lookups.UnknownName) as raised:
        lookups.check_region(region)
    for word in words:
        assert word in str(raised.value), str(raised.value)


@pytest.mark.parametrize("name", ["m7i-flex.large", "i4i.large", "c6i.xlarge", "m7i.metal-24xl", "t4g.nano"])
def test_real_types_are_known(name):
    """Guards against a real type refused because a hand-kept table lacks it."""
    assert lookups.check_instance_type(name) is None


@pytest.mark.parametrize("name,closest", [("c6i.xlage", "c6i.xlarge"), ("m6ii.large", "m6i.large"),
                                          ("c6l.large", "c6i.large"), ("t3.4xlarge", "t3.xlarge")])
def test_typos_are_refused_with_the_closest_real_name(name, closest):
    """Guards against a typo taken for a newer type ("AWS may offer it")."""
    with pytest.raises(lookups.UnknownName) as raised:
        lookups.check_instance_type(name)
    assert f"did you mean {closest}?" in str(raised.value)


def test_a_generation_beyond_the_sdks_newest_is_a_warning():
    """Guards against refusing a type launched after the locked SDK: a later generation of a known series with a
    standard size is taken as newer, with a warning that names the SDK."""
    newest = max(int(t[1]) for t in lookups.instance_types() if t[0] == "c" and t[1].isdigit() and t[2] in "0123456789agi")
    warning = lookups.check_instance_type(f"c{newest + 1}0g.large")
    assert warning and "botocore" in warning and f"newest c generation is" in warning
