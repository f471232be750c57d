import AllocationLedger
import AllocationTracing
import BTF
import Glibc
import GuestMemory
import Introspection
import LeakAnalysis

/// The kernel view over crafted guest memory: the real kernel's symbols and BTF layouts
/// (`LEAKVISOR_FUZZ_VMLINUX`, default the built guest image's vmlinux), and kernel structures
/// the input overwrites. A well-formed guest (`CraftedGuest`) is laid out first: init_task and a
/// process of two threads with an mm, a maple tree of three VMAs (one of a file with a dentry
/// path and a cached page), user page tables and argv. Each input is then a list of writes
/// (12 bytes: window and width, 24-bit offset, value) into four 2 MiB windows of kernel memory:
/// init_task's page, vmemmap_base's page, a direct-map "heap" holding the crafted objects (and
/// the user pages), and the vmemmap. Then tasks, processes, mappings, file paths and the page
/// cache are read through the public API, and each task's kernel stack unwound.
enum KernelViewTarget {
    nonisolated(unsafe) static var guest: CraftedGuest?

    static let target = FuzzTarget(name: "kernel-view", prepare: {
        let path = getenv("LEAKVISOR_FUZZ_VMLINUX").map { String(cString: $0) } ?? "guest-images/build/default/vmlinux"
        do {
            guest = try CraftedGuest(kernel: try GuestKernel.load(vmlinux: path))
        } catch {
            printError("kernel-view: cannot prepare the crafted guest from \(path): \(error)")
            exit(1)
        }
    }) { input in
        guard let guest else { return }
        var input = input
        let pageIndex = UInt64(input.u8())
        var written: [(UInt64, Int)] = []
        while !input.isAtEnd {
            let kind = input.u8()
            let offset = UInt64(input.u16()) | UInt64(input.u8()) << 16
            let value = input.u64()
            let width = [1, 2, 4, 8][Int(kind >> 2) & 3]
            let physical = guest.windows[Int(kind & 3)] + offset % (CraftedGuest.windowSize - 8)
            let bytes = (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
            try? guest.memory.write(bytes, at: GuestPhysicalAddress(physical))
            written.append((physical, width))
        }
        exercise(guest, pageIndex: pageIndex)
        for (physical, width) in written { try? guest.memory.fill(0, at: GuestPhysicalAddress(physical), count: width) }
        guest.restore()
    }

    static func exercise(_ guest: CraftedGuest, pageIndex: UInt64) {
        guard let view = try? guest.view() else { return }
        let locator = try? PageCacheLocator(view: view)
        var files: Set<UInt64> = [guest.heap(CraftedGuest.Heap.file)]
        let current = (try? view.currentTasks()) ?? [:]
        if let tasks = try? view.tasks() {
            for task in tasks.prefix(8) {
                _ = try? view.threadID(ofTask: task.address)
                _ = try? view.kernelStack(of: task, current: current, lines: nil, limit: 8)
                _ = try? view.userRegisters(of: task, current: current)
                _ = try? view.fsBase(of: task, current: current)
                guard task.mm != 0 else { continue }
                _ = try? view.pageTableRoot(ofMM: task.mm)
                _ = try? view.userSpace(of: task)
                for mapping in (try? view.mappings(of: task)) ?? [] where mapping.fileObject != 0 {
                    files.insert(mapping.fileObject)
                }
            }
        }
        _ = try? view.processes()
        _ = try? view.mappings(ofMM: guest.heap(CraftedGuest.Heap.mm))
        for file in files.prefix(4) {
            _ = try? view.path(ofFile: file)
            _ = try? locator?.inode(ofFile: file)
            _ = try? locator?.cachedPage(ofFile: file, pageIndex: pageIndex)
        }
        _ = view.describe(kernelAddress: guest.heap(0))
    }
}
