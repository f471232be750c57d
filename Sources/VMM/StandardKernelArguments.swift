/// The command line every LeakVisor guest gets before host-policy and user additions.
enum StandardKernelArguments {
    static func words(verbose: Bool) -> [String] {
        var words = [
            "console=ttyS0", "8250.nr_uarts=1",
            // No PCI devices: skip probing. (Not acpi=off: without CONFIG_X86_MPPARSE, as in Debian's
            // kernel, acpi=off also disables the local APIC; with no ACPI tables it finds none anyway.)
            "pci=off",
            // Reset through the i8042 so reboots and panics end the run.
            "reboot=k", "panic=-1",
            // The guest kernel may run slowly (emulated): no lockup detectors or timer checks.
            "nowatchdog", "nmi_watchdog=0", "no_timer_check", "tsc=reliable",
            "rcupdate.rcu_cpu_stall_suppress=1", "cryptomgr.notests", "random.trust_cpu=on",
            "i8042.noaux", "i8042.nokbd", "i8042.nopnp", "audit=0",
        ]
        // Quiet: only critical messages (panics, oopses) reach the console unless --verbose-kernel.
        words += verbose ? ["loglevel=7"] : ["quiet", "loglevel=3"]
        return words
    }
}
