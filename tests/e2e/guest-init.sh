#!/bin/busybox sh
# /init of the QEMU guest that scripts/qemu-e2e builds: loads the drivers
# for QEMU's ATAPI and virtio-scsi CD drives, then runs each line the host
# sends on the serial console and frames its output, so the host
# (tests/e2e/qemu_e2e.py) can check the guest and QEMU's monitor in turn.
#
# With `e2e.hostroot` on the kernel command line (the Windows pass), the
# guest runs in the host's own userland instead: QEMU shares the host's /
# read-only over 9p, a tmpfs overlay makes it writable, and the lines run
# chrooted there, where the host's Wine runs the MinGW discarbiterd.exe and
# discarb.exe with the drive mapped as \\.\CdRom0 (PLATFORM-NOTES.md "Wine
# inside the guest"). `e2e.windows=DIR` names the Windows build and
# `e2e.prefix=DIR` the Wine prefix (host paths; the guest's writes to it
# stay in the overlay).

# Runs each line the host sends: "E2E-BEGIN", its output, "E2E-END <status>".
serve() {
  echo "E2E:ready"
  while IFS= read -r line; do
    echo "E2E-BEGIN"
    if [ -n "${E2E_CAPTURE:-}" ]; then
      # N.B. Wine writes to a terminal through its console, which wraps lines
      # and adds escape sequences: its output goes through a file instead.
      eval "$line" >"$E2E_CAPTURE" 2>&1 </dev/null
      status=$?
      cat "$E2E_CAPTURE"
    else
      eval "$line"
      status=$?
    fi
    echo "E2E-END $status"
  done
}

if [ "${1:-}" = --serve ]; then
  serve
  exit 0
fi

/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/opt/discarbiter
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /run/discarbiter /mnt
for m in scsi_common scsi_mod cdrom sr_mod sg libata ata_piix \
         virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_scsi \
         netfs fscache 9pnet 9pnet_virtio 9p overlay; do
  insmod "/modules/$m.ko" || echo "E2E:insmod $m failed"
done
echo 1 > /proc/sys/kernel/printk  # N.B. keep kernel chatter off the console we parse
stty -echo

option() {  # the value of NAME=VALUE on the kernel command line
  tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | head -1
}

if ! grep -qw e2e.hostroot /proc/cmdline; then
  serve
  poweroff -f
fi

# The Windows pass: the host's userland, writable in a tmpfs overlay.
windows=$(option e2e.windows)
prefix=$(option e2e.prefix)
mkdir -p /host /upper /new
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose hostroot /host ||
  echo "E2E:mounting the host's root over 9p failed"
mount -t tmpfs -o size=1g tmpfs /upper
mkdir -p /upper/data /upper/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/upper/data,workdir=/upper/work /new ||
  echo "E2E:the overlay on the host's root failed"
mount --bind /dev /new/dev
mount -t proc proc /new/proc
mount -t sysfs sys /new/sys
mount -t tmpfs tmpfs /new/run
mkdir -p /new/tmp/e2e /new/usr/local/bin
# N.B. a symlink in dosdevices makes Wine open the node itself; without it
# \\.\CdRom0 is mountmgr's device, which answers no pass-through IOCTL.
ln -sfn /dev/sr0 "/new$prefix/dosdevices/cdrom0"
# N.B. Wine refuses a prefix its user does not own, and the guest runs as
# root while the host made the prefix as whoever ran scripts/dev test: the
# directory alone is copied up to the overlay and given to root.
chown 0:0 "/new$prefix"
# N.B. exec: the pid the host kills is Wine's own process.
for tool in discarbiterd:service discarb:client-lib; do
  printf '#!/bin/sh\nexec /usr/lib/wine/wine64 %s/%s/%s.exe "$@"\n' \
    "$windows" "${tool#*:}" "${tool%%:*}" >"/new/usr/local/bin/${tool%%:*}"
  chmod +x "/new/usr/local/bin/${tool%%:*}"
done
cp /init /new/tmp/e2e/init
exec chroot /new /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root \
  WINEPREFIX="$prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" \
  E2E_CAPTURE=/tmp/e2e/output /bin/sh /tmp/e2e/init --serve
