"""The stress checker must be able to fail: audit logs that break each
invariant, and one that keeps them all."""
import unittest

from stress import Checker


def line(kind, drive, session, count=0, detail=""):
    text = (f"2026-01-01T00:00:00.000 info {kind} drive={drive} client='C{session}' "
            f"session={session} pid=1 user=root lock_count={count}")
    return text + (f": {detail}" if detail else "")


def check(*lines):
    c = Checker()
    for entry in lines:
        c.feed(entry)
    c.finish()
    return c.violations


class CheckerTest(unittest.TestCase):
    def test_a_clean_history_has_no_violations(self):
        self.assertEqual(check(
            line("acquired", "sim0", 1, 1), line("nested", "sim0", 1, 2),
            line("waiting", "sim0", 2), line("released", "sim0", 1, 1),
            line("freed", "sim0", 1), line("acquired", "sim0", 2, 1, "granted from the queue"),
            line("session_ended", "sim0", 2, 1, "session ended holding 1 lock(s)"),
            line("freed", "sim0", 2)), [])

    def test_two_owners_at_once(self):
        self.assertIn("two owners of sim0: 1 and 2",
                      check(line("acquired", "sim0", 1, 1), line("acquired", "sim0", 2, 1))[0])

    def test_a_grant_out_of_fifo_order(self):
        v = check(line("acquired", "sim0", 1, 1), line("waiting", "sim0", 2),
                  line("waiting", "sim0", 3), line("freed", "sim0", 1),
                  line("acquired", "sim0", 3, 1, "granted from the queue"))
        self.assertIn("granted to 3 ahead of the queue [2, 3]", v[0])

    def test_a_direct_acquire_that_jumps_the_queue(self):
        v = check(line("acquired", "sim0", 1, 1), line("waiting", "sim0", 2),
                  line("freed", "sim0", 1), line("acquired", "sim0", 4, 1))
        self.assertIn("taken by 4 while [2] waited", v[0])

    def test_counts_that_do_not_balance_and_a_drive_left_held(self):
        v = check(line("acquired", "sim0", 1, 1), line("nested", "sim0", 1, 2))
        self.assertTrue(any("still owned by 1" in x for x in v), v)
        self.assertTrue(any("do not balance: +2" in x for x in v), v)

    def test_a_wait_left_in_the_queue(self):
        v = check(line("acquired", "sim0", 1, 1), line("waiting", "sim0", 2),
                  line("freed", "sim0", 1), line("acquired", "sim0", 2, 1, "granted from the queue"),
                  line("freed", "sim0", 2), line("waiting", "sim1", 3))
        self.assertEqual(v, ["sim1 still has waiters [3]"])


if __name__ == "__main__":
    unittest.main()
