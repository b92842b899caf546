#!/bin/busybox sh
# /init of the QEMU guest that scripts/qemu-e2e builds: loads the drivers
# for QEMU's ATAPI and virtio-scsi CD drives, then runs each line the host
# sends on the serial console and frames its output, so the host
# (tests/e2e/qemu_e2e.py) can check the guest and QEMU's monitor in turn.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/opt/discarbiter
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /run/discarbiter /mnt
for m in scsi_common scsi_mod cdrom sr_mod sg libata ata_piix \
         virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_scsi; do
  insmod "/modules/$m.ko" || echo "E2E:insmod $m failed"
done
echo 1 > /proc/sys/kernel/printk  # N.B. keep kernel chatter off the console we parse
stty -echo
echo "E2E:ready"
while IFS= read -r line; do
  echo "E2E-BEGIN"
  eval "$line"
  echo "E2E-END $?"
done
poweroff -f
