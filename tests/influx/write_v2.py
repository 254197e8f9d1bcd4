"""Writes points to a hub with the official InfluxDB 2 Python client (influxdb-client),
once with its synchronous write API and once with its batching API.

Usage: write_v2.py URL TOKEN BASE_SECONDS   (exit 0 when every write was accepted)
"""
import sys

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS, WriteOptions

url, token, base = sys.argv[1], sys.argv[2], int(sys.argv[3])
errors = []

with InfluxDBClient(url=url, token=token, org="telehub") as client:
    sync = client.write_api(write_options=SYNCHRONOUS)
    for i in range(10):
        p = Point("boiler").field("value", 20.0 + i).field("pressure", i).time(base + i, WritePrecision.S)
        sync.write(bucket="telehub", record=p)

    def failed(conf, data, exc):
        errors.append(str(exc))

    batching = client.write_api(
        write_options=WriteOptions(batch_size=25, flush_interval=100),
        error_callback=failed,
    )
    lines = [f"pump,site=a flow={i}.5 {(base + 100 + i) * 1_000_000_000}" for i in range(100)]
    batching.write(bucket="telehub", record=lines)
    batching.close()

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
