"""Reads a hub through `/query` with the InfluxDB 1.x Python client (`influxdb`), as
its users do, and prints what it got as one JSON object.

Usage: query_v1.py HOST PORT TOKEN FROM_MS TO_MS
"""
import json
import sys

from influxdb import InfluxDBClient

host, port, token, start, end = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
client = InfluxDBClient(host=host, port=port, username="python", password=token, database="telehub")
panel = client.query(
    f'SELECT mean("value") FROM "temperature" WHERE time >= {start}ms AND time < {end}ms '
    'GROUP BY time(1m), "device" fill(none)',
    epoch="ms",
)
latest = client.query('SELECT "value" FROM "temperature" ORDER BY time DESC LIMIT 1', epoch="ms")
print(json.dumps({
    "databases": [d["name"] for d in client.get_list_database()],
    "measurements": [m["name"] for m in client.get_list_measurements()],
    "a": list(panel.get_points(tags={"device": "a"})),
    "b": list(panel.get_points(measurement="temperature", tags={"device": "b"})),
    "latest": list(latest.get_points()),
}))
