#!/bin/sh
# Boot a real systemd as PID 1 of the namespaces `unshare` made for it (tests/process/test_systemd_boot.py):
# its root is an overlay of this machine's root, so whatever it writes (users, directories, logs) stays in
# SCRATCH. Installs the generated units, sysusers.d/tmpfiles.d files and env files as DEPLOY.md does.
#   unshare --pid --fork --mount --net --uts --ipc --cgroup --propagation private sh systemd_boot.sh \
#           SCRATCH UNITS SYSTEMD
set -eu
scratch=$1 units=$2 systemd=$3
root=$scratch/root
mkdir -p "$scratch/upper" "$scratch/work" "$root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
mount --rbind /dev "$root/dev"
for dir in dev/shm run tmp; do mount -t tmpfs tmpfs "$root/$dir"; done
mkdir -p "$root/etc/sysusers.d" "$root/etc/tmpfiles.d" "$root/etc/kairos"
cp "$units"/*.service "$units"/*.target "$root/etc/systemd/system/"
cp "$units/sysusers.d/kairos.conf" "$root/etc/sysusers.d/"
cp "$units/tmpfiles.d/kairos.conf" "$root/etc/tmpfiles.d/"
cp "$units"/env/*.env "$root/etc/kairos/"
cd "$root"
mkdir -p oldroot
pivot_root . oldroot
umount -l /oldroot
export container=kairos-test
exec "$systemd" --unit=kairos.target
