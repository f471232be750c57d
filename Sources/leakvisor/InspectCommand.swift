import AllocationLedger
import AllocationTracing
import ArgumentParser
import Control
import Foundation
import GuestInterface
import Introspection
import LeakAnalysis
import VMM

/// `leakvisor inspect`: look into a guest that a `leakvisor run` on this host is running.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Look into a running guest from outside: processes, mappings, stacks, symbols.",
        discussion: """
            Talks to a monitor started with `leakvisor run` on this host (through its control socket in \
            \(ControlEndpoint.directory)). The monitor pauses the guest's vCPUs for an exact view, reads \
            the guest kernel's own data structures (located through the kernel's kallsyms and BTF), and \
            resumes it. Nothing runs inside the guest.
            """,
        subcommands: [Processes.self, Maps.self, Stack.self, Sym.self, Modules.self, KernelRoots.self, KernelRefs.self])

    struct Common: ParsableArguments {
        @Option(help: "PID of the leakvisor monitor to ask (default: the only one running).")
        var session: Int32?

        @Flag(help: "Print the answer as JSON.")
        var json = false

        func ask(_ request: ControlRequest) throws -> ControlResponse {
            let response: ControlResponse
            do {
                response = try ControlClient.send(request, to: try ControlClient.resolve(session: session))
            } catch {
                throw InspectFailure.unreachable(error)
            }
            if let error = response.error { throw InspectFailure.answered(error) }
            return response
        }

        func printJSON<T: Encodable>(_ value: T) throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(TerminalSanitizer.escapingControls(json: String(decoding: try encoder.encode(value), as: UTF8.self)))
        }
    }

    enum InspectFailure: Error, CustomStringConvertible {
        /// The monitor could not be found or asked (no session, socket errors, a bad answer).
        case unreachable(any Error)
        /// The monitor's answer: its error message, or what the answer lacked.
        case answered(String)

        /// The monitor's message quotes the guest: escaped when stderr is a terminal.
        var description: String {
            switch self {
            case .unreachable(let error): return MonitorOutput.quotedOnStandardError("\(error)")
            case .answered(let message): return MonitorOutput.quotedOnStandardError(message)
            }
        }
    }

    struct Processes: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ps", abstract: "List the guest's processes and kernel threads.")
        @OptionGroup var common: Common

        func run() throws {
            let list = try common.ask(.processes).processes ?? []
            if common.json { return try common.printJSON(list) }
            show("  PID  PPID S THR NAME             COMMAND")
            for p in list {
                let command = p.isKernelThread || p.arguments.isEmpty ? "[\(p.name)]" : p.arguments.joined(separator: " ")
                show(pad(p.pid, 5) + " " + pad(p.parentPID, 5) + " " + p.state + " " + pad(p.threadIDs.count, 3) + " "
                      + p.name.padding(toLength: 16, withPad: " ", startingAt: 0) + " " + command)
            }
        }
    }

    struct Maps: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "maps", abstract: "Show a guest process's memory mappings, as /proc/PID/maps would.")
        @Argument(help: "Guest PID.") var pid: Int32
        @OptionGroup var common: Common

        func run() throws {
            let maps = try common.ask(.mappings(pid: pid)).mappings ?? []
            if common.json { return try common.printJSON(maps) }
            for m in maps { show(m.procMapsLine) }
        }
    }

    struct Stack: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stack", abstract: "Unwind and symbolize every thread of a guest process (user and kernel frames).")
        @Argument(help: "Guest PID.") var pid: Int32
        @OptionGroup var common: Common

        func run() throws {
            let stacks = try common.ask(.stacks(pid: pid)).stacks ?? []
            if common.json { return try common.printJSON(stacks) }
            for s in stacks {
                show("Thread \(s.tid) (\(s.name)), \(s.context):")
                for (i, f) in s.userFrames.enumerated() { show("    #\(i) " + describe(f)) }
                if !s.kernelFrames.isEmpty {
                    show("  in the kernel:")
                    for (i, f) in s.kernelFrames.enumerated() { show("    #\(i) " + describe(f)) }
                }
            }
        }
    }

    struct Modules: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "modules", abstract: "List the guest kernel's loaded modules, as /proc/modules would (with their text).")
        @OptionGroup var common: Common

        func run() throws {
            let list = try common.ask(.modules).modules ?? []
            if common.json { return try common.printJSON(list) }
            show("MODULE                   SIZE STATE    TEXT")
            for m in list {
                let text = "0x" + String(m.textRange.lowerBound, radix: 16) + "-0x" + String(m.textRange.upperBound, radix: 16)
                show(m.name.padding(toLength: 20, withPad: " ", startingAt: 0) + " " + pad(m.coreRange.upperBound - m.coreRange.lowerBound, 8) + " "
                     + m.state.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0) + " " + text)
            }
        }
    }

    struct Sym: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sym", abstract: "Symbolize a guest address: a kernel address, or a user address with --pid.")
        @Argument(help: "Address (hex with 0x, or decimal).") var address: String
        @Option(help: "The process a user-space address belongs to.") var pid: Int32?
        @OptionGroup var common: Common

        func run() throws {
            let text = address.lowercased()
            guard let value = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text) else {
                throw ValidationError("\(address) is not an address")
            }
            guard let frame = try common.ask(.symbol(address: value, pid: pid)).symbol else { return }
            if common.json { return try common.printJSON(frame) }
            show(describe(frame))
        }
    }
}

extension InspectCommand {
    struct KernelRoots: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kernel-roots",
            abstract: "Show the guest kernel's reachability roots (bytes by kind, time) and a probe scan of known objects.")
        @OptionGroup var common: Common

        func run() throws {
            guard let s = try common.ask(.kernelRoots).kernelRoots else { return }
            if common.json { return try common.printJSON(s) }
            show("Kernel roots (guest RAM \(s.guestRAMBytes >> 20) MiB, \(s.perCPUUnits) per-CPU unit(s), THREAD_SIZE \(s.threadSize >> 10) KiB),"
                 + " enumerated in " + String(format: "%.3f s:", s.seconds))
            for kind in KernelRootRange.Kind.allCases {
                guard let bytes = s.bytes[kind.rawValue] else { continue }
                show("  " + kind.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0) + pad(bytes, 12)
                     + " bytes in \(s.ranges[kind.rawValue] ?? 0) range(s)")
            }
            show("  " + "total".padding(toLength: 14, withPad: " ", startingAt: 0) + pad(UInt64.saturatedSum(s.bytes.values), 12) + " bytes")
            let c = s.census
            show("Page census: \(c.frames) frames: slab \(c.slab), free \(c.free), user \(c.user), kernel \(c.kernel), excluded \(c.excluded)")
            show("Free slab slots (stale, not roots): \(s.freeSlabSlots) of \(s.freeSlabBytes) bytes; free lists ended early: \(s.brokenFreeLists)")
            show("Tasks: \(s.tasks) on the task list, \(s.stacks) stack root(s); vmalloc areas: \(s.vmallocAreas)"
                 + " (\(s.vmallocAreasSkipped) skipped); register words: \(s.registerWords)")
            show("Probe scan (" + String(format: "%.3f s", s.probeSeconds) + ", \(s.probeComplete ? "complete" : "incomplete"),"
                 + " \(s.probeRootBytes) root bytes, \(s.probeBytesScanned) bytes read):")
            for p in s.probes {
                show("  " + p.name.padding(toLength: 14, withPad: " ", startingAt: 0) + pad(p.objects, 6) + " objects: \(p.reachable) reachable, "
                     + "\(p.direct) direct, \(p.indirect) indirect, \(p.unclassified) unclassified")
            }
            for problem in s.problems { show("Problem: " + problem) }
        }
    }
}

extension InspectCommand {
    struct KernelRefs: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kernel-refs",
            abstract: "Show every word of the guest kernel's roots and tracked objects that points into an object: why it is (not) reachable.",
            discussion: "With --track kernel or all, the address may be anywhere in a tracked object: its whole range is searched for. Otherwise the search is for pointers to that byte. The roots are searched whole (the conservative kinds too, before the scan would take the objects out of them).")
        @Argument(help: "A kernel address (hex with 0x, or decimal).") var address: String
        @OptionGroup var common: Common

        func run() throws {
            let text = address.lowercased()
            guard let value = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text) else {
                throw ValidationError("\(address) is not an address")
            }
            guard let s = try common.ask(.kernelReferrers(address: value)).kernelReferrers else { return }
            if common.json { return try common.printJSON(s) }
            show("0x\(String(s.target, radix: 16)) (\(s.size) byte(s), \(s.tracked ? "a tracked object" : "not a tracked object")):"
                 + " \(s.referrers.count + s.moreReferrers) word(s) point into it; \(s.bytesSearched) bytes searched")
            for r in s.referrers {
                var line = "  0x\(String(r.address, radix: 16)) = 0x\(String(r.value, radix: 16))"
                if let root = r.root { line += " in root \(root)" }
                if let object = r.object { line += " in object 0x\(String(object, radix: 16)) (+0x\(String(r.address &- object, radix: 16)) of \(r.objectSize ?? 0))" }
                if r.bookkeeping { line += " (vmalloc bookkeeping: ignored)" }
                if r.freeSlot { line += " (free slab slot: ignored)" }
                show(line)
            }
            if s.moreReferrers > 0 { show("  ... \(s.moreReferrers) more") }
            for problem in s.problems { show("Problem: " + problem) }
        }
    }
}

private func pad(_ value: some BinaryInteger, _ width: Int) -> String {
    let s = String(value)
    return String(repeating: " ", count: max(0, width - s.count)) + s
}

/// `0x401d3e in lv_inner+0x1e /src/lv-blocked.c:13 (/usr/bin/lv-blocked-fp)`, LSan style.
func describe(_ f: GuestStackFrame) -> String {
    var line = "0x" + String(f.pc, radix: 16)
    if let function = f.function {
        line += " in " + function
        if let offset = f.offset, offset != 0 { line += "+0x" + String(offset, radix: 16) }
    }
    if let file = f.file { line += " " + file + (f.line.map { ":\($0)" } ?? "") }
    if let module = f.module { line += " (\(module))" }
    return line
}

/// One line of `inspect` output; it quotes the guest (names, paths), so it is escaped on a terminal.
private func show(_ line: String) { print(MonitorOutput.printable(line)) }
