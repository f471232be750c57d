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
# A daemon keeps every descriptor it inherits: started from a CI job, one holding the job's output
# pipe would keep the job from ever ending. So each starts with stdio on /dev/null and nothing else.
daemon() {
    (
        for fd in /proc/self/fd/*; do
            n=${fd##*/}
            if [ "$n" -gt 2 ] 2>/dev/null; then eval "exec $n>&-" 2>/dev/null || true; fi
        done
        exec "$@" </dev/null >/dev/null 2>&1
    )
}
if ! answers; then
    pgrep -x virtlogd >/dev/null || daemon virtlogd -d
    pgrep -x libvirtd >/dev/null || daemon libvirtd -d
fi
for _ in $(seq 1 100); do
    answers && exit 0
    sleep 0.2
done
echo "libvirt-up: libvirtd does not answer on qemu:///system" >&2
exit 1
