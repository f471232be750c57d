import Foundation
import Testing

@testable import DebugInfo

/// How the call-chain fixture is built for one unwind test.
struct CallChainVariant: Sendable, CustomTestStringConvertible {
    let name: String
    let flags: [String]
    /// Remove `.debug_frame` after building (with no unwind tables this leaves the fixture's own
    /// functions without any CFI).
    let stripDebugFrame: Bool
    /// How frames above `inner` are expected to be found.
    let callerMethod: FrameMethod

    var testDescription: String { name }

    static let all: [CallChainVariant] = [
        CallChainVariant(
            name: "frame pointers, dynamic", flags: ["-O1", "-g", "-fno-omit-frame-pointer"], stripDebugFrame: false,
            callerMethod: .cfi),
        CallChainVariant(
            name: "CFI only, dynamic", flags: ["-O1", "-g", "-fomit-frame-pointer"], stripDebugFrame: false,
            callerMethod: .cfi),
        CallChainVariant(
            name: "frame pointers, static", flags: ["-O1", "-g", "-fno-omit-frame-pointer", "-static"],
            stripDebugFrame: false, callerMethod: .cfi),
        CallChainVariant(
            name: "CFI only, static", flags: ["-O1", "-g", "-fomit-frame-pointer", "-static"], stripDebugFrame: false,
            callerMethod: .cfi),
        CallChainVariant(
            name: "frame pointers without CFI, dynamic",
            flags: ["-O1", "-g", "-fno-omit-frame-pointer", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables"],
            stripDebugFrame: true, callerMethod: .framePointer),
    ]
}

/// Registers, stack and mappings of a host process stopped with ptrace: what the monitor gets from
/// a paused guest.
struct DebugInfoProcessSnapshot {
    var registers: RegisterSet
    var stackStart: UInt64
    var stack: [UInt8]
    /// File-backed mappings: path, start address, file offset.
    var mappings: [(path: String, start: UInt64, offset: UInt64)]

    /// The 8 bytes at `address` if they lie in the copied stack.
    func read(_ address: UInt64) -> UInt64? {
        guard address >= stackStart, address - stackStart <= UInt64(stack.count), UInt64(stack.count) - (address - stackStart) >= 8
        else { return nil }
        let index = Int(address - stackStart)
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(stack[index + i]) << (8 * UInt64(i)) }
        return value
    }

    /// A symbolizer with every ELF file mapped from offset 0, placed at its load bias.
    func symbolizer() throws -> Symbolizer {
        let symbolizer = try Symbolizer()
        var added: Set<String> = []
        for mapping in mappings where mapping.offset == 0 && !added.contains(mapping.path) {
            guard let file = try? ELFFile(path: mapping.path),
                let bias = file.loadBias(mappingStart: mapping.start, fileOffset: 0)
            else { continue }
            try symbolizer.addModule(name: mapping.path, hostPath: mapping.path, loadBias: bias)
            added.insert(mapping.path)
        }
        return symbolizer
    }

    /// Runs `regsnap` on process `pid` (which must be blocked) and reads its mappings.
    static func take(pid: Int32, regsnap: String, scratch: DebugInfoScratch) throws -> DebugInfoProcessSnapshot {
        let stackFile = scratch.path + "/stack-\(pid)"
        let result = try DebugInfoShell.run(regsnap, [String(pid), stackFile])
        guard result.status == 0 else { throw DebugInfoFixtureError.commandFailed("regsnap", result.error) }
        var values: [String: UInt64] = [:]
        for line in result.output.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = UInt64(parts[1].dropFirst(2), radix: 16) { values[String(parts[0])] = value }
        }
        let names = ["rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp"] + (8...15).map { "r\($0)" } + ["rip"]
        let registers = RegisterSet(dwarfRegisters: try names.map { name in
            guard let value = values[name] else { throw DebugInfoFixtureError.commandFailed("regsnap", "no \(name)") }
            return value
        })
        let stack = [UInt8](try Data(contentsOf: URL(fileURLWithPath: stackFile)))
        let maps = try String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)
        var mappings: [(String, UInt64, UInt64)] = []
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[5].hasPrefix("/"),
                let start = fields[0].split(separator: "-").first.flatMap({ UInt64($0, radix: 16) }),
                let offset = UInt64(fields[2], radix: 16)
            else { continue }
            mappings.append((fields[5...].joined(separator: " "), start, offset))
        }
        return DebugInfoProcessSnapshot(
            registers: registers, stackStart: values["stack_start"] ?? 0, stack: stack, mappings: mappings)
    }
}

/// Whether this host lets the tests ptrace a process that is not their descendant (regsnap attaches
/// to its sibling): Yama scope 0 or absent, or scope 1–2 as root; never with scope 3.
private let ptraceUsable: Bool = {
    guard DebugInfoFixtures.gccAvailable else { return false }
    guard let text = try? String(contentsOfFile: "/proc/sys/kernel/yama/ptrace_scope", encoding: .utf8),
        let scope = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    else { return true }
    return scope == 0 || (scope < 3 && getuid() == 0)
}()

@Suite(.enabled(if: ptraceUsable, "needs gcc and ptrace"))
struct DebugInfoUnwindTests {
    @Test(arguments: CallChainVariant.all)
    func unwindsABlockedProcess(variant: CallChainVariant) throws {
        let scratch = try DebugInfoScratch()
        defer { withExtendedLifetime(scratch) {} }
        let snapshot = try blockedCallChain(variant, in: scratch)
        let symbolizer = try snapshot.symbolizer()
        let unwinder = try StackUnwinder(symbolizer: symbolizer)
        let backtrace = unwinder.unwind(registers: snapshot.registers, readMemory: snapshot.read)
        let locations = backtrace.frames.map { symbolizer.symbolize(frame: $0) }
        let listing = Self.listing(backtrace, locations)

        #expect(backtrace.frames.first?.method == .initial)
        #expect(backtrace.frames.first?.pc == snapshot.registers.rip)
        let functions = locations.map { $0?.function ?? "?" }
        guard let innerIndex = functions.firstIndex(of: "inner") else {
            Issue.record("no frame in inner:\n\(listing)")
            return
        }
        let chain = ["inner", "middle", "outer", "main"]
        #expect(Array(functions.dropFirst(innerIndex).prefix(4)) == chain, "\(listing)")
        let markers = ["inner-read", "middle-call", "outer-call", "main-call"]
        for (offset, marker) in markers.enumerated() where innerIndex + offset < locations.count {
            let frame = backtrace.frames[innerIndex + offset]
            let location = locations[innerIndex + offset]
            #expect(!frame.isActivation)
            #expect(location?.file.map { URL(fileURLWithPath: $0).lastPathComponent } == "callchain.c", "\(listing)")
            #expect(location?.line == (try DebugInfoFixtures.line(of: marker, in: "callchain.c")), "\(marker)\n\(listing)")
        }
        // inner is unwound from libc's read, which has CFI; the fixture's own frames per variant.
        #expect(backtrace.frames[innerIndex].method == .cfi, "\(listing)")
        for index in (innerIndex + 1)..<min(innerIndex + 4, backtrace.frames.count) {
            #expect(backtrace.frames[index].method == variant.callerMethod, "\(listing)")
        }
        // The walk ends cleanly at _start, well inside the limit.
        #expect(backtrace.stop == .outermostFrame, "\(listing)")
        #expect(backtrace.frames.count < 16)
    }

    /// The compact CFI tables and `CallFrameWalker` find the same frames as libdw's unwinder, from
    /// libc's `read` up through the fixture's functions (CFI or frame pointers) to `_start`.
    @Test(arguments: CallChainVariant.all)
    func callFrameTablesWalkLikeLibdw(variant: CallChainVariant) throws {
        let scratch = try DebugInfoScratch()
        defer { withExtendedLifetime(scratch) {} }
        let snapshot = try blockedCallChain(variant, in: scratch)
        let libdw = try StackUnwinder(symbolizer: try snapshot.symbolizer())
            .unwind(registers: snapshot.registers, readMemory: snapshot.read).frames.map(\.pc)
        var tables: [String: CallFrameTable] = [:]
        for path in Set(snapshot.mappings.map(\.path)) {
            if let file = try? ELFFile(path: path) { tables[path] = CallFrameTable(file: file) }
        }
        let rule = { (pc: UInt64) -> CallFrameRule? in
            guard let mapping = snapshot.mappings.filter({ $0.start <= pc }).max(by: { $0.start < $1.start }) else { return nil }
            return tables[mapping.path]?.rule(atFileOffset: pc - mapping.start + mapping.offset)
        }
        let registers = snapshot.registers
        let walk = CallFrameWalker(maximumFrames: 64).walk(
            pc: registers.rip, stackPointer: registers.dwarfRegisters[7], framePointer: registers.dwarfRegisters[6],
            rule: rule, read: snapshot.read)
        #expect(walk.frames == libdw, "walker \(walk.frames.map(hex)) libdw \(libdw.map(hex))")
        #expect(walk.counts.callFrameInformation >= (variant.callerMethod == .cfi ? 4 : 1))
        if variant.callerMethod == .cfi { #expect(walk.counts.framePointer == 0) } else { #expect(walk.counts.framePointer >= 3) }
    }

    /// The call-chain fixture built as `variant` says in `scratch` (which must outlive the
    /// snapshot's use: its mappings name files there), run until it blocks in `read`, and taken.
    private func blockedCallChain(_ variant: CallChainVariant, in scratch: DebugInfoScratch) throws -> DebugInfoProcessSnapshot {
        let regsnap = try scratch.build("regsnap.c", output: "regsnap", flags: ["-O1"])
        let program = try scratch.build("callchain.c", output: "callchain", flags: variant.flags)
        if variant.stripDebugFrame {
            try DebugInfoShell.check("objcopy", ["--remove-section=.debug_frame", program])
        }
        return try withBlockedProcess(program) { pid in
            try DebugInfoProcessSnapshot.take(pid: pid, regsnap: regsnap, scratch: scratch)
        }
    }

    /// Runs `program` with a pipe on stdin, waits until it blocks reading it, and calls `body` with
    /// its pid; the program is ended afterwards.
    private func withBlockedProcess<T>(_ program: String, _ body: (Int32) throws -> T) throws -> T {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        let input = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
        let pid = process.processIdentifier
        let deadline = Date().addingTimeInterval(10)
        while !Self.isBlockedInRead(pid) {
            guard Date() < deadline, process.isRunning else {
                throw DebugInfoFixtureError.commandFailed(program, "did not block in read()")
            }
            usleep(10_000)
        }
        return try body(pid)
    }

    /// Whether `pid` sits in the read system call (number 0 in /proc/PID/syscall).
    private static func isBlockedInRead(_ pid: Int32) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: "/proc/\(pid)/syscall") else { return false }
        defer { try? handle.close() }
        let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        return text.split(separator: " ").first == "0"
    }

    private static func listing(_ backtrace: Backtrace, _ locations: [SymbolizedLocation?]) -> String {
        var lines = ["stop: \(backtrace.stop)"]
        for (index, frame) in backtrace.frames.enumerated() {
            let location = locations[index]
            let place = location.map { "\($0.function ?? "?")+\($0.functionOffset) \($0.file ?? "?"):\($0.line ?? 0) [\($0.module)]" } ?? "?"
            lines.append("#\(index) \(hex(frame.pc)) \(frame.method) sp=\(frame.stackPointer.map(hex) ?? "?") \(place)")
        }
        return lines.joined(separator: "\n")
    }
}
