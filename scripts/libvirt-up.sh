#!/usr/bin/env bash
# Makes sure libvirt's system daemon answers on qemu:///system, for `leakvisor attach --connect`
# and its integration test: through systemd where it runs, else by starting virtlogd and
# libvirtd as daemons (containers and CI machines have no init system). Idempotent.
set -euo pipefail
answers() { virsh -c qemu:///system version >/dev/null 2>&1; }
answers && exit 0
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl start virtlogd.socket libvirtd.socket libvirtd.service 2>/dev/null || true
fi
if ! answers; then
    pgrep -x virtlogd >/dev/null || virtlogd -d
    pgrep -x libvirtd >/dev/null || libvirtd -d
fi
for _ in $(seq 1 100); do
    answers && exit 0
    sleep 0.2
done
echo "libvirt-up: libvirtd does not answer on qemu:///system" >&2
exit 1
