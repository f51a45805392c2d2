#!/usr/bin/python3
"""20: a SUBACK is sent only once every shard applied the subscription's
route: two SUBSCRIBEs to a new filter in one write are acknowledged in order
(the second may not overtake the first's pending route change), and a
publish from another shard right after the SUBACK is delivered."""
from harness import *


def main():
    b = Broker(shards=4, log_level="notice").start()
    out_of_order = 0
    missed = 0
    pub = Raw(b)
    pub.connect("it20-pub", keepalive=0)
    for i in range(40):
        r = Raw(b)
        r.connect("it20-s%d" % i, keepalive=0)
        f = "it20/fresh/%d" % i
        r.send(subscribe_pkt(1, [(f, 1)]) + subscribe_pkt(2, [(f, 0)]))
        first = r.expect(9)
        r.expect(9)
        if first.pid != 1:
            out_of_order += 1
        pub.send(publish_pkt(f, b"now"))
        try:
            got = r.recv(3.0).type == 3
        except TimeoutError:
            got = False
        missed += not got
        r.sock.close()
    check_eq(out_of_order, 0, "SUBACKs in order when a second SUBSCRIBE waits on a route change")
    check_eq(missed, 0, "a publish right after the SUBACK reaches the subscriber (40 tries)")


run(main)
