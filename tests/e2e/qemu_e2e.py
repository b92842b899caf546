#!/usr/bin/env python3
"""The Linux discarbiterd against QEMU's emulated MMC drive (DESIGN.md
"Testing ladder" 4). Boots the guest that scripts/qemu-e2e built, runs the
service and discarb inside it over the serial console, and checks the drive
from outside through QEMU's monitor: the tray lock while held, INQUIRY, an
eject refused while the tray is locked, the unlock after SIGKILL of the
holder and of the service itself, hot-plug of a second drive, and the unlock
of a persistent PREVENT the owner sent itself.

Usage: qemu_e2e.py WORKDIR   (WORKDIR holds vmlinuz, initrd.gz, disc.iso)
Prints one line per check and the measured figures; exits non-zero on the
first failure with the guest's output."""
import json
import os
import re
import select
import socket
import subprocess
import sys
import time


class Failure(Exception):
    pass


class Monitor:
    """QEMU's human monitor on a Unix socket; one connection per command."""

    def __init__(self, path):
        self.path = path

    def run(self, command, timeout=10.0):
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.path)
            s.settimeout(timeout)
            self._read_prompt(s, deadline)
            s.sendall(command.encode() + b"\n")
            out = self._read_prompt(s, deadline)
        # N.B. the monitor echoes through readline: drop its escape sequences.
        text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out)
        return text.split("\n", 1)[1] if "\n" in text else text

    @staticmethod
    def _read_prompt(s, deadline):
        buf = b""
        while not buf.endswith(b"(qemu) "):
            if time.monotonic() > deadline:
                raise Failure(f"monitor: no prompt; got {buf!r}")
            chunk = s.recv(4096)
            if not chunk:
                raise Failure("monitor closed")
            buf += chunk
        return buf[: -len(b"(qemu) ")].decode(errors="replace")

    def lock_state(self, device):
        """'locked' or 'not locked', and the tray, for one block device."""
        info = self.run("info block")
        m = re.search(re.escape(device) + r" .*?\n(?:.*\n)*?\s+Removable device: (not locked|locked), tray (open|closed)",
                      info)
        if not m:
            raise Failure(f"monitor: no removable device {device} in:\n{info}")
        return m.group(1), m.group(2)

    def wait_lock_state(self, device, wanted, timeout):
        """Polls the monitor until device reports wanted; the time it took."""
        start = time.monotonic()
        while True:
            state, _ = self.lock_state(device)
            if state == wanted:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise Failure(f"{device} still '{state}' after {timeout} s (wanted '{wanted}')")


class Guest:
    def __init__(self, workdir, monitor_path):
        self.log = []
        self.proc = subprocess.Popen(
            ["qemu-system-x86_64", "-m", "512", "-nographic", "-no-reboot", "-net", "none",
             "-kernel", os.path.join(workdir, "vmlinuz"), "-initrd", os.path.join(workdir, "initrd.gz"),
             "-append", "console=ttyS0 quiet panic=-1",
             "-cdrom", os.path.join(workdir, "disc.iso"),
             "-device", "virtio-scsi-pci,id=scsi0",
             "-monitor", f"unix:{monitor_path},server,nowait"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.buffer = b""

    def _line(self, deadline):
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("guest: no output in time")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise Failure("guest: QEMU exited")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        text = line.decode(errors="replace").rstrip("\r")
        self.log.append(text)
        return text

    def wait_for(self, marker, timeout):
        deadline = time.monotonic() + timeout
        while True:
            # N.B. SeaBIOS's terminal resets may precede it on the same line.
            if self._line(deadline).strip().endswith(marker):
                return

    def sh(self, command, timeout=30.0):
        """Runs one shell line in the guest: (exit code, output)."""
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while self._line(deadline).strip() != "E2E-BEGIN":
            pass
        out = []
        while True:
            line = self._line(deadline)
            m = re.fullmatch(r"E2E-END (\d+)", line.strip())
            if m:
                return int(m.group(1)), "\n".join(out)
            out.append(line)

    def ok(self, command, timeout=30.0):
        rc, out = self.sh(command, timeout)
        if rc != 0:
            raise Failure(f"guest: `{command}` exited {rc}:\n{out}")
        return out

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"poweroff -f\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=20)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def check(what, condition, detail=""):
    if not condition:
        raise Failure(f"{what}: {detail}")
    print(f"  ok: {what}")


def main(workdir):
    monitor_path = os.path.join(workdir, "monitor.sock")
    if os.path.exists(monitor_path):
        os.unlink(monitor_path)
    started = time.monotonic()
    guest = Guest(workdir, monitor_path)
    mon = Monitor(monitor_path)
    cd = "ide1-cd0"
    try:
        guest.wait_for("E2E:ready", timeout=120)
        print(f"guest booted in {time.monotonic() - started:.1f} s")
        guest.ok("ls /dev/sr0 /dev/sg0")

        def start_service(args=""):
            guest.ok(f"discarbiterd run --log-level debug {args} >>/tmp/d.log 2>&1 & echo $! >/tmp/d.pid")
            deadline = time.monotonic() + 20
            while guest.sh("discarb status >/dev/null 2>&1")[0] != 0:
                if time.monotonic() > deadline:
                    raise Failure("discarbiterd did not answer:\n" + guest.ok("cat /tmp/d.log"))
            return json.loads(guest.ok("discarb --json status"))

        status = start_service()
        drive = next((d for d in status["drives"] if d["id"] == "cdrom0"), None)
        check("discovery found /dev/sr0 as cdrom0 (sgio)",
              drive is not None and drive["backend"] == "sgio" and drive["path"] == "/dev/sr0", status)
        check("the start-up ALLOW left the drive unlocked", mon.lock_state(cd)[0] == "not locked")

        inquiry = guest.ok("discarb inquiry cdrom0 --name e2e-inquiry")
        check("INQUIRY shows QEMU's vendor and product", "QEMU" in inquiry and "QEMU DVD-ROM" in inquiry, inquiry)

        # The OS-level exclusivity: the service's O_EXCL open keeps mounts out.
        rc, out = guest.sh("mount -t iso9660 -o ro /dev/sr0 /mnt")
        check("mounting /dev/sr0 is refused while the service owns it", rc != 0, out)

        guest.ok("mkfifo /tmp/hold1; sleep 100000 | discarb hold cdrom0 --name e2e-holder >/tmp/hold1 2>&1 & "
                 "echo $! >/tmp/hold1.pid; exec 3</tmp/hold1")
        check("discarb hold acquired cdrom0", guest.ok("read -r line <&3; echo \"$line\"").strip() == "acquired cdrom0")
        check("QEMU's monitor reports the drive locked", mon.lock_state(cd)[0] == "locked")
        out = mon.run(f"eject {cd}")
        check("QEMU refuses a host-side eject while held", "is locked" in out, out)
        rc, out = guest.sh("discarb eject cdrom0 --name e2e-other")
        check("discarb eject by another client is refused with exit 3 naming the holder",
              rc == 3 and "E_IMAPI_RECORDER_LOCKED" in out and "e2e-holder" in out, f"rc={rc} {out}")

        t0 = time.monotonic()
        guest.ok("kill -9 $(cat /tmp/hold1.pid)")
        unlock_s = time.monotonic() - t0 + mon.wait_lock_state(cd, "not locked", timeout=1.0)
        check("after SIGKILL of the holder the monitor reports 'not locked' within a second", unlock_s < 1.0)
        print(f"unlock after SIGKILL of the holder: {unlock_s * 1000:.0f} ms "
              "(from sending kill to QEMU's monitor showing 'not locked')")
        owner = guest.ok("discarb owner cdrom0")
        check("cdrom0 is free again", "free" in owner, owner)

        rc, out = guest.sh("discarb eject cdrom0 --name e2e-eject --keep-tray-lock")
        sense = re.search(r"sense (2/53/00|5/53/02)", out)
        check("an eject while the tray is locked fails with sense 2/53/00 (or 5/53/02), explained",
              rc == 1 and sense is not None and "medium removal prevented" in out, f"rc={rc} {out}")
        check("...and the lock it took is gone again", mon.lock_state(cd)[0] == "not locked")

        # The service itself dies holding a lock; started again, the drive is free.
        guest.ok("mkfifo /tmp/hold2; sleep 100000 | discarb hold cdrom0 --name e2e-victim >/tmp/hold2 2>&1 & "
                 "echo $! >/tmp/hold2.pid; exec 4</tmp/hold2")
        check("a second holder acquired cdrom0", guest.ok("read -r line <&4; echo \"$line\"").strip() == "acquired cdrom0")
        check("locked again", mon.lock_state(cd)[0] == "locked")
        t0 = time.monotonic()
        guest.ok("kill -9 $(cat /tmp/d.pid)")
        before_restart, _ = mon.lock_state(cd)
        died_s = time.monotonic() - t0
        guest.sh("kill -9 $(cat /tmp/hold2.pid)")
        status = start_service()
        drive = next(d for d in status["drives"] if d["id"] == "cdrom0")
        check("after discarbiterd was SIGKILLed and started again, cdrom0 is free",
              drive["state"] == "free" and drive["owner"] is None, drive)
        check("...and QEMU reports it not locked", mon.lock_state(cd)[0] == "not locked")
        print(f"after SIGKILL of discarbiterd itself: the monitor said '{before_restart}' "
              f"{died_s * 1000:.0f} ms later, before the restart")
        guest.ok("sleep 100000 | discarb hold cdrom0 --name e2e-after >/tmp/hold3 2>&1 & echo $! >/tmp/hold3.pid")
        # N.B. the hold's output is a file here; wait for it through the service's view.
        deadline = time.monotonic() + 10
        while "e2e-after" not in guest.ok("discarb owner cdrom0"):
            if time.monotonic() > deadline:
                raise Failure("the restarted service did not grant cdrom0")
        check("the restarted service grants cdrom0 to a new client", True)
        guest.ok("kill $(cat /tmp/hold3.pid)")
        mon.wait_lock_state(cd, "not locked", timeout=5.0)

        # Hot-plug: a second drive arrives on virtio-scsi, is held, leaves, comes back.
        mon.run("drive_add 0 if=none,id=hp1,file=" + os.path.join(workdir, "disc.iso") + ",media=cdrom,readonly=on")
        t0 = time.monotonic()
        mon.run("device_add scsi-cd,bus=scsi0.0,drive=hp1,id=cd1")

        def wait_state(drive_id, wanted, timeout=10.0):
            deadline = time.monotonic() + timeout
            while True:
                drives = json.loads(guest.ok("discarb --json status"))["drives"]
                d = next((d for d in drives if d["id"] == drive_id), None)
                if d is not None and d["state"] == wanted:
                    return d, time.monotonic()
                if time.monotonic() > deadline:
                    raise Failure(f"{drive_id} not '{wanted}' within {timeout} s: {d}\n" + guest.ok("cat /tmp/d.log"))

        d, seen = wait_state("cdrom1", "free")
        check("a hot-plugged drive is attached without a restart", d["backend"] == "sgio", d)
        print(f"hot-plug: cdrom1 usable {(seen - t0) * 1000:.0f} ms after device_add")
        guest.ok("sleep 100000 | discarb hold cdrom1 --name e2e-hotplug >/tmp/hold4 2>&1 & echo $! >/tmp/hold4.pid")
        wait_state("cdrom1", "owned")
        check("the hot-plugged drive is locked in QEMU while held", mon.lock_state("hp1")[0] == "locked")
        mon.run("device_del cd1")
        d, _ = wait_state("cdrom1", "removed")
        check("its removal is noticed and its lock ends with it", d["owner"] is None, d)
        guest.sh("kill $(cat /tmp/hold4.pid)")
        mon.run("drive_add 0 if=none,id=hp2,file=" + os.path.join(workdir, "disc.iso") + ",media=cdrom,readonly=on")
        mon.run("device_add scsi-cd,bus=scsi0.0,drive=hp2,id=cd2")
        d, _ = wait_state("cdrom1", "free")
        check("the drive that came back is attached again under its id", d["backend"] == "sgio", d)

        # An owner's persistent PREVENT (MMC 11b) through discarb exec. With
        # tray_lock off the service sends no PREVENT of its own, so only its
        # tracking of what the owner sent can unlock the tray at release.
        # N.B. QEMU's ATAPI model reads bit 0 alone: 03 locks it there.
        guest.ok("kill -TERM $(cat /tmp/d.pid); wait $(cat /tmp/d.pid)")
        guest.ok("echo '{\"tray_lock\": false}' >/tmp/notray.json")
        start_service("--config /tmp/notray.json")
        check("with tray_lock off, the restarted service leaves cdrom0 unlocked",
              mon.lock_state(cd)[0] == "not locked")
        t0 = time.monotonic()
        out = guest.ok('discarb exec cdrom0 --name e2e-persistent --cdb "1E 00 00 00 03 00"')
        unlock_s = time.monotonic() - t0 + mon.wait_lock_state(cd, "not locked", timeout=1.0)
        check("an owner's persistent PREVENT is cleared by its release: the monitor says 'not locked'",
              "GOOD" in out, out)
        drive = next(d for d in json.loads(guest.ok("discarb --json status"))["drives"] if d["id"] == "cdrom0")
        check("...and status shows neither prevention",
              (drive["tray_locked"], drive["tray_persistent"], drive["owner"]) == (False, False, None), drive)
        log = guest.ok("cat /tmp/d.log")
        check("...and no ALLOW failed", "ALLOW MEDIUM REMOVAL failed" not in log, log[-2000:])
        print(f"persistent PREVENT by the owner (tray_lock off): 'not locked' {unlock_s * 1000:.0f} ms "
              "after discarb exec was started")

        out = guest.ok("discarb eject cdrom0 --name e2e-eject")
        check("discarb eject opens the tray", "ejected" in out and mon.lock_state(cd)[1] == "open", out)

        rc, _ = guest.sh("kill -TERM $(cat /tmp/d.pid); wait $(cat /tmp/d.pid)")
        log = guest.ok("cat /tmp/d.log")
        check("SIGTERM stops the service cleanly", "discarbiterd stopped" in log, log[-2000:])
        print(f"qemu e2e: all checks passed in {time.monotonic() - started:.1f} s")
        return 0
    except Failure as e:
        print(f"qemu e2e FAILED: {e}")
        print("---- guest console (last 60 lines)")
        print("\n".join(guest.log[-60:]))
        try:
            print("---- discarbiterd log")
            print(guest.sh("cat /tmp/d.log", timeout=5)[1][-4000:])
        except Failure:
            pass
        return 1
    finally:
        guest.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
