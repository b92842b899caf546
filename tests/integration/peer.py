"""A client that the security tests run as another user (subprocess user=…),
so that the service sees a second uid through SO_PEERCRED.

  peer.py ENDPOINT requests NAME JSON_LIST
      hello as NAME, then each request of JSON_LIST in order, in one session;
      prints the JSON list of replies (one per request, hello's first).
  peer.py ENDPOINT flood N
      opens N connections that never say hello; prints {"refused": [names],
      "open": count} once every refused one has been told, then holds the
      rest open until stdin closes.
"""
import json
import select
import socket
import sys
import time

from harness import encode_frame


def read_frame(sock):
    def exact(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    header = exact(8)
    if header is None:
        return None
    json_len = int.from_bytes(header[:4], "little")
    payload_len = int.from_bytes(header[4:], "little")
    reply = json.loads(exact(json_len))
    exact(payload_len)
    return reply


def connect(endpoint):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(endpoint)
    return sock


def run_requests(endpoint, name, requests):
    sock = connect(endpoint)
    replies = []
    for i, req in enumerate([{"op": "hello", "protocol": 1, "client_name": name, "pid": 1}]
                            + requests):
        sock.sendall(encode_frame(dict(req, id=i + 1)))
        reply = read_frame(sock)
        while reply is not None and "event" in reply:  # subscribed: events come in between
            reply = read_frame(sock)
        replies.append(reply)
    print(json.dumps(replies))


def flood(endpoint, count):
    socks = [connect(endpoint) for _ in range(count)]
    # A refused connection is told at once and closed; an admitted one hears
    # nothing until its handshake deadline. Collect what arrives within 3 s
    # of the last connect, then report.
    refused = []
    deadline = time.monotonic() + 3.0
    pending = list(socks)
    while pending and time.monotonic() < deadline:
        readable, _, _ = select.select(pending, [], [], max(0.0, deadline - time.monotonic()))
        for s in readable:
            reply = read_frame(s)
            refused.append(reply["error"]["name"] if reply else "closed")
            pending.remove(s)
    print(json.dumps({"refused": refused, "open": len(pending)}), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    endpoint, mode = sys.argv[1], sys.argv[2]
    if mode == "requests":
        run_requests(endpoint, sys.argv[3], json.loads(sys.argv[4]))
    else:
        flood(endpoint, int(sys.argv[3]))
