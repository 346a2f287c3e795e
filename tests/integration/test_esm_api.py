# SPDX-License-Identifier: Apache-2.0
"""Event source mappings through boto3: Create/Get/List/Update/Delete, their validation and
errors, persistence across a restart."""
import pytest
from botocore.exceptions import ClientError, ParamValidationError

from helpers import esm
from helpers import lambdafn as lf
from helpers.esm import make_mapping, native_function, probe  # noqa: F401 (fixtures)
from helpers.lambdafn import lam, lam_nv, make_function  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("local_only")


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_create_get_list_update_delete(lam, server, make_stream, native_function, make_mapping):
    fn = native_function()
    stream = make_stream()
    arn = esm.stream_arn(server, stream)
    m = lam.create_event_source_mapping(FunctionName=fn, EventSourceArn=arn,
                                        StartingPosition="LATEST", BatchSize=7,
                                        MaximumBatchingWindowInSeconds=0)
    uuid = m["UUID"]
    try:
        assert m["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert m["State"] == "Creating"
        assert m["EventSourceArn"] == arn
        assert m["FunctionArn"].endswith(f":function:{fn}")
        assert m["BatchSize"] == 7 and m["StartingPosition"] == "LATEST"
        assert m["ParallelizationFactor"] == 1 and m["MaximumRetryAttempts"] == -1
        assert m["MaximumRecordAgeInSeconds"] == -1 and m["BisectBatchOnFunctionError"] is False
        assert m["TumblingWindowInSeconds"] == 0 and m["FunctionResponseTypes"] == []
        assert m["DestinationConfig"] == {"OnFailure": {}}
        assert m["LastProcessingResult"] == "No records processed"
        esm.wait_state(lam, uuid, "Enabled")
        g = lam.get_event_source_mapping(UUID=uuid)
        assert g["UUID"] == uuid and g["State"] == "Enabled"
        # List: by function, by source, both, and all.
        for kw in ({"FunctionName": fn}, {"EventSourceArn": arn},
                   {"FunctionName": g["FunctionArn"], "EventSourceArn": arn}, {}):
            ids = [x["UUID"] for x in lam.list_event_source_mappings(**kw)["EventSourceMappings"]]
            assert uuid in ids, kw
        assert lam.list_event_source_mappings(FunctionName=fn, EventSourceArn=arn + "x")[
            "EventSourceMappings"] == []
        # Update.
        u = lam.update_event_source_mapping(
            UUID=uuid, BatchSize=50, MaximumRetryAttempts=3, BisectBatchOnFunctionError=True,
            MaximumRecordAgeInSeconds=120, ParallelizationFactor=3,
            FunctionResponseTypes=["ReportBatchItemFailures"],
            DestinationConfig={"OnFailure": {"Destination": arn}},
            FilterCriteria={"Filters": [{"Pattern": '{"data":{"a":[1]}}'}]})
        assert u["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert u["State"] == "Updating"
        esm.wait_state(lam, uuid, "Enabled")
        g = lam.get_event_source_mapping(UUID=uuid)
        assert (g["BatchSize"], g["MaximumRetryAttempts"], g["MaximumRecordAgeInSeconds"],
                g["ParallelizationFactor"]) == (50, 3, 120, 3)
        assert g["BisectBatchOnFunctionError"] is True
        assert g["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert g["DestinationConfig"] == {"OnFailure": {"Destination": arn}}
        assert g["FilterCriteria"] == {"Filters": [{"Pattern": '{"data":{"a":[1]}}'}]}
        # Disable / enable.
        assert lam.update_event_source_mapping(UUID=uuid, Enabled=False)["State"] == "Disabling"
        esm.wait_state(lam, uuid, "Disabled")
        assert lam.update_event_source_mapping(UUID=uuid, Enabled=True)["State"] == "Enabling"
        esm.wait_state(lam, uuid, "Enabled")
        # Clearing destination and response types.
        lam.update_event_source_mapping(UUID=uuid, DestinationConfig={"OnFailure": {}},
                                        FunctionResponseTypes=[])
        g = lam.get_event_source_mapping(UUID=uuid)
        assert g["DestinationConfig"] == {"OnFailure": {}} and g["FunctionResponseTypes"] == []
    finally:
        d = lam.delete_event_source_mapping(UUID=uuid)
    assert d["ResponseMetadata"]["HTTPStatusCode"] == 202 and d["State"] == "Deleting"
    esm.wait_gone(lam, uuid)
    with pytest.raises(ClientError) as ei:
        lam.delete_event_source_mapping(UUID=uuid)
    assert code(ei) == "ResourceNotFoundException"


def test_at_timestamp_round_trips(lam, server, make_stream, native_function, make_mapping):
    fn = native_function()
    stream = make_stream()
    import datetime
    ts = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    m = make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, stream),
                     StartingPosition="AT_TIMESTAMP", StartingPositionTimestamp=ts)
    g = lam.get_event_source_mapping(UUID=m["UUID"])
    assert g["StartingPosition"] == "AT_TIMESTAMP"
    assert g["StartingPositionTimestamp"] == ts


def test_errors(lam, lam_nv, server, make_stream, native_function, make_mapping):
    fn = native_function()
    stream = make_stream()
    arn = esm.stream_arn(server, stream)
    base = dict(FunctionName=fn, EventSourceArn=arn, StartingPosition="TRIM_HORIZON")

    def create_err(client=lam_nv, **over):
        kw = dict(base)
        kw.update(over)
        kw = {k: v for k, v in kw.items() if v is not None}
        with pytest.raises(ClientError) as ei:
            client.create_event_source_mapping(**kw)
        return code(ei), ei.value.response["ResponseMetadata"]["HTTPStatusCode"]

    assert create_err(FunctionName="no-such-function") == ("ResourceNotFoundException", 404)
    assert create_err(EventSourceArn=esm.stream_arn(server, "no-such-stream"))[0] == \
        "InvalidParameterValueException"
    assert create_err(EventSourceArn="arn:aws:sqs:us-east-1:000000000000:q")[0] == \
        "InvalidParameterValueException"
    assert create_err(EventSourceArn=arn.replace(server.region, "eu-west-3"))[0] == \
        "InvalidParameterValueException"
    assert create_err(StartingPosition=None)[0] == "InvalidParameterValueException"
    assert create_err(StartingPosition="AT_TIMESTAMP")[0] == "InvalidParameterValueException"
    for bad in (dict(BatchSize=0), dict(BatchSize=10001), dict(ParallelizationFactor=11),
                dict(ParallelizationFactor=0), dict(MaximumRetryAttempts=-2),
                dict(MaximumRetryAttempts=10001), dict(MaximumRecordAgeInSeconds=59),
                dict(MaximumRecordAgeInSeconds=604801), dict(TumblingWindowInSeconds=901),
                dict(MaximumBatchingWindowInSeconds=301),
                dict(TumblingWindowInSeconds=60, ParallelizationFactor=2),
                dict(FunctionResponseTypes=["Nope"]),
                dict(DestinationConfig={"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:q"}}),
                dict(FilterCriteria={"Filters": [{"Pattern": "not json"}]}),
                dict(FilterCriteria={"Filters": [{"Pattern": '{"data":{"a":[{"bogus":1}]}}'}]}),
                dict(FilterCriteria={"Filters": [{"Pattern": '{"data":{"a":[{"numeric":[">"]}]}}'}]}),
                dict(FilterCriteria={"Filters": [{"Pattern": '{"data":{"a":1}}'}]}),
                dict(FilterCriteria={"Filters": [{"Pattern": '{"a":[1]}'}] * 6})):
        assert create_err(**bad) == ("InvalidParameterValueException", 400), bad

    m = make_mapping(**base)
    assert create_err(client=lam) == ("ResourceConflictException", 409)
    with pytest.raises(ClientError) as ei:
        lam.get_event_source_mapping(UUID="00000000-0000-4000-8000-000000000000")
    assert code(ei) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as ei:
        lam.update_event_source_mapping(UUID="00000000-0000-4000-8000-000000000000", BatchSize=5)
    assert code(ei) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as ei:
        lam_nv.update_event_source_mapping(UUID=m["UUID"], BatchSize=0)
    assert code(ei) == "InvalidParameterValueException"
    with pytest.raises(ClientError) as ei:
        lam.update_event_source_mapping(UUID=m["UUID"], FunctionName="no-such-function")
    assert code(ei) == "ResourceNotFoundException"
    # An invalid update changes nothing.
    assert lam.get_event_source_mapping(UUID=m["UUID"])["BatchSize"] == 100
    with pytest.raises((ClientError, ParamValidationError)):
        lam.list_event_source_mappings(MaxItems=0)


def test_list_pagination(lam, server, make_stream, native_function, make_mapping):
    fn = native_function()
    uuids = set()
    for _ in range(5):
        uuids.add(make_mapping(FunctionName=fn, EventSourceArn=esm.stream_arn(server, make_stream()),
                               wait=False)["UUID"])
    seen, marker = [], None
    while True:
        kw = {"FunctionName": fn, "MaxItems": 2}
        if marker:
            kw["Marker"] = marker
        r = lam.list_event_source_mappings(**kw)
        assert len(r["EventSourceMappings"]) <= 2
        seen += [x["UUID"] for x in r["EventSourceMappings"]]
        marker = r.get("NextMarker")
        if not marker:
            break
    assert sorted(seen) == sorted(uuids) and len(seen) == len(set(seen))


def test_mapping_survives_restart(private_server, probe, make_stream):
    from helpers import kinesis as k
    s = private_server()
    kin, lamc = k.make_client(s), lf.make_client(s)
    kin.create_stream(StreamName="st", ShardCount=1)
    k.wait_active(kin, "st")
    lamc.create_function(FunctionName="f", Runtime=esm.NATIVE_RUNTIME, Role=lf.ROLE,
                         Handler="libprobe.so:handler", Code={"ZipFile": esm.native_zip()},
                         Environment={"Variables": probe.env})
    esm.put(kin, "st", ["before-creation"])
    m = lamc.create_event_source_mapping(FunctionName="f", EventSourceArn=esm.stream_arn(s, "st"),
                                         StartingPosition="LATEST", BatchSize=3, Enabled=False)
    esm.wait_state(lamc, m["UUID"], "Disabled")
    esm.put(kin, "st", ["after-creation"])
    s.restart()
    kin, lamc = k.make_client(s), lf.make_client(s)
    g = lamc.get_event_source_mapping(UUID=m["UUID"])
    assert g["BatchSize"] == 3 and g["StartingPosition"] == "LATEST" and g["State"] == "Disabled"
    # LATEST means "at creation", not "at enable" or "at restart": the record put after the
    # creation is delivered, the one before is not.
    lamc.update_event_source_mapping(UUID=m["UUID"], Enabled=True)
    esm.wait_state(lamc, m["UUID"], "Enabled")
    probe.wait_records(1)
    esm.put(kin, "st", ["after-restart"])
    probe.wait_records(2)
    assert [d for _, d in probe.delivered()] == ["after-creation", "after-restart"]
