"""What Ray pushes to a ``pare`` driver about its cluster goes to a file; the console gets one line per lost node."""

from __future__ import annotations

from pipelines.io.cluster import RayMessages

NODE_DEAD = (
    "The node with node id: 18c08baf77d45a2b1b3e4c19562996c37b47e02d5dbcf86ead6bef2e and address: 10.0.0.6 and node "
    "name: 10.0.0.6 has been marked dead because the detector has missed too many heartbeats from it. This can "
    "happen when a \t(1) raylet crashes unexpectedly (OOM, etc.) \n\t(2) raylet has lagging heartbeats due to slow "
    "network or busy workload."
)
"""Ray 2.60's message, as the driver received it when the second node of tests/test_two_nodes.py was killed."""
RETRIED = (
    "Task MapWorker(Map(ShardBuilder)).submit failed. There are infinite retries remaining, so the task will be "
    "retried. Error: The actor is temporarily unavailable: RpcError: RPC error: recvmsg:Connection reset by peer"
)


def test_ray_messages_go_to_a_file_and_a_lost_node_is_one_line(tmp_path, capsys):
    path = tmp_path / "pare-ray-messages-01000000.log"
    messages = RayMessages(str(path))
    for text in (RETRIED, RETRIED, NODE_DEAD, NODE_DEAD):
        messages({"lines": [text], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    assert path.read_text() == f"{RETRIED}\n{RETRIED}\n{NODE_DEAD}\n{NODE_DEAD}\n"
    assert capsys.readouterr().out.splitlines() == [
        f"Ray reported a problem in its cluster; its messages are in {path}",
        f"Ray lost node 10.0.0.6 (node 18c08baf); what ran there is retried elsewhere (Ray's messages: {path})",
    ]
