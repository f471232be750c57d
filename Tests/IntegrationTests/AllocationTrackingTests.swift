import Foundation
import Testing

/// Boots the real guest once with `--track user`, runs the leak test programs (static and
/// dynamic builds) and checks the report: for each program the exact outstanding blocks (count,
/// bytes, allocator, allocating function and line), nothing for a program that frees everything,
/// no findings from glibc's own frees; then detaches and checks that every byte the monitor
/// changed is back (the monitor compares the pages, and the guest's md5sum of the armed files
/// matches the host's copies again). Run twice: with traps only, and with `--exitless` (frees and
/// deletes through the event rings), which must give the same report and restore the same bytes.
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt,
                "needs .build/debug/leakvisor and the default guest image (scripts/setup.sh)"))
struct AllocationTrackingTests {
    static let dynamicPrograms = ["lv-leak-basic", "lv-alloc-clean", "lv-leak-threads", "lv-leak-cxx"]
    /// The same leaks through Debian's jemalloc, tcmalloc and mimalloc (lv-leak-allocators.c),
    /// bundled with their libraries.
    static let otherAllocators = ["jemalloc", "tcmalloc", "mimalloc"]
    static let libc = "/lib/x86_64-linux-gnu/libc.so.6"
    static let armedFiles = [libc, "/usr/bin/lv-leak-basic"]

    /// Blocks every static binary has before `main` (LEAK-PROGRAMS.md): (allocator, size, caller).
    static let staticBaseline: [Block] = [
        Block("malloc", 10, "_dl_get_origin"), Block("calloc", 1225, "_dl_new_object"),
        Block("malloc", 40, "_dl_init_paths"), Block("malloc", 320, "_dl_init_paths"),
        Block("malloc", 160, "_dl_find_object_init"),
    ]

    struct Block: Hashable, CustomStringConvertible {
        let function: String
        let size: Int
        let caller: String
        var line: Int?
        init(_ function: String, _ size: Int, _ caller: String, line: Int? = nil) {
            self.function = function; self.size = size; self.caller = caller; self.line = line
        }
        var description: String { "\(function)(\(size)) in \(caller)\(line.map { ":\($0)" } ?? "")" }
    }

    @Test(arguments: [false, true])
    func theLedgerMatchesEachProgramExactlyAndDetachRestoresTheGuest(exitless: Bool) throws {
        let bin = LeakVisorProcess.imageDirectory.appendingPathComponent("host-bin")
        // Stacks 16 frames deep (valgrind's default is 12): lv-leak-deep's chains are compared with valgrind's.
        var arguments = ["run", "--track", "user", "--timeout", "2400", "--interactive", "--stack-depth", "16"]
        if exitless { arguments.append("--exitless") }
        for name in Self.dynamicPrograms {
            arguments += ["--add", bin.appendingPathComponent("\(name)-dynamic").path + ":/\(name)-dynamic"]
        }
        for allocator in Self.otherAllocators {
            arguments += ["--add", bin.appendingPathComponent("lv-leak-\(allocator)").path + ":/lv-leak-\(allocator)"]
        }
        arguments += ["--add", bin.appendingPathComponent("lv-leak-deep").path + ":/lv-leak-deep"]
        // jemalloc linked into the executable, and preloaded under a glibc program (a second copy
        // of lv-leak-basic-dynamic, so that the report tells the two runs apart).
        arguments += ["--add", bin.appendingPathComponent("lv-leak-jemalloc-static").path + ":/lv-leak-jemalloc-static",
                      "--add", bin.appendingPathComponent("lv-leak-basic-dynamic").path + ":/lv-leak-basic-preload"]
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("lv-track-\(getpid())-\(exitless).json")
        defer { try? FileManager.default.removeItem(at: report) }
        arguments += ["--report", report.path]
        let script = """
            lv-leak-basic; /lv-leak-basic-dynamic; /lv-alloc-clean-dynamic; lv-leak-realloc
            lv-leak-threads; /lv-leak-threads-dynamic; lv-leak-cxx; /lv-leak-cxx-dynamic; lv-leak-loop 25 0; lv-leak-tree
            /lv-leak-jemalloc; /lv-leak-tcmalloc; /lv-leak-mimalloc; /lv-leak-deep
            /lv-leak-jemalloc-static; LD_PRELOAD=/lib/x86_64-linux-gnu/libjemalloc.so.2 /lv-leak-basic-preload
            echo LV-ARMED-BEGIN; md5sum \(Self.armedFiles.joined(separator: " ")); echo LV-ARMED-END
            echo LV-READY
            read answer
            echo LV-RESTORED-BEGIN; md5sum \(Self.armedFiles.joined(separator: " ")); echo LV-RESTORED-END
            echo "LV-DONE $answer"
            """
        let guest = try LiveGuest(arguments + ["--", "sh", "-c", script], long: true)
        let ready = guest.waitFor("LV-READY", timeout: 2000)
        #expect(ready, "the guest never became ready: \(guest.console.suffix(3000))")
        guard ready else { _ = guest.finish(timeout: 5); return }
        let session = ["--session", "\(guest.pid)"]

        // While the guest runs: the report over the control socket already has the exited programs.
        let live = try LeakVisorProcess.run(["report", "--json"] + session)
        #expect(live.status == 0, "\(live.stderr)")
        let liveProcesses = try processes(Data(live.stdout.utf8))
        #expect(liveProcesses["/usr/bin/lv-leak-basic"]?.blocks.count == 8, "\(live.stdout.prefix(3000))")

        // Detach: every changed byte is back and every page written into is as it was.
        let detach = try LeakVisorProcess.run(["detach", "--json"] + session)
        #expect(detach.status == 0, "\(detach.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(detach.stdout.utf8)) as? [String: Any] ?? [:]
        let restored = summary["bytesRestored"] as? Int ?? 0
        #expect(restored > 20, "\(summary)")
        #expect(summary["bytesChangedByGuest"] as? Int == 0, "\(summary)")
        #expect((summary["pagesCompared"] as? Int ?? 0) > 3 && summary["pagesCompared"] as? Int == summary["pagesIdentical"] as? Int,
                "\(summary)")

        guest.type("finished\n")
        let result = guest.finish(timeout: 900)
        #expect(result.status == 0, "stderr: \(result.stderr.suffix(3000))")
        #expect(result.stdout.contains("LV-DONE finished"))
        #expect(!result.stdout.contains("Segmentation fault"), "\(result.stdout.suffix(3000))")
        if exitless {
            // The releases went through the rings: the glibc, libstdc++ and static programs' frees
            // and deletes, with at most a handful of traps of the path's own per process.
            let line = result.stderr.split(separator: "\n").first { $0.contains("leakvisor: exitless: ") }.map(String.init) ?? ""
            let ringReleases = Int(line.components(separatedBy: "exitless: ").last?.split(separator: " ").first ?? "") ?? 0
            #expect(ringReleases > 100, "\(line)\n\(result.stderr.suffix(2000))")
            // And most allocations: glibc's malloc (its 1-byte `push rbp` displaced with the next
            // instruction) and the other allocators' with room for the jumps.
            let ringAllocations = Int(line.components(separatedBy: " release(s) and ").last?.split(separator: " ").first ?? "") ?? 0
            #expect(ringAllocations > 100, "\(line)")
            #expect(!line.contains("; off:"), "\(line)")
        }

        // The guest reads the armed files differently while tracked and like the host after detach.
        let stdout = result.stdout.replacingOccurrences(of: "\r", with: "")
        let armed = md5sums(stdout, "LV-ARMED"), restoredSums = md5sums(stdout, "LV-RESTORED")
        let host = try hostMD5(Self.armedFiles.map { $0 == Self.libc ? $0 : LeakVisorProcess.imageDirectory.appendingPathComponent("rootfs" + $0).path })
        #expect(restoredSums == host, "after detach: \(restoredSums), host: \(host)")
        #expect(armed.count == 2 && armed[0] != host[0] && armed[1] != host[1], "while armed: \(armed), host: \(host)")

        // The report at exit (JSON written atomically), program by program.
        let final = try processes(Data(contentsOf: report))
        #expect(result.stderr.contains("SUMMARY: LeakVisor:"))
        func expect(_ executable: String, _ wanted: [Block], findings: [String] = []) {
            guard let process = final[executable] else {
                Issue.record("\(executable) is not in the report: \(final.keys.sorted())")
                return
            }
            #expect(Self.tally(process.blocks) == Self.tally(wanted), "\(executable)")
            #expect(process.findings == findings, "\(executable) findings")
        }
        func at(_ tag: String, _ file: String) throws -> Int { try tagLine(tag, file) }
        let b = "lv-leak-basic.c"
        let basic = [Block("malloc", 100, "lv_leak_malloc_100", line: try at("basic-malloc-100", b)),
                     Block("calloc", 200, "lv_leak_calloc_200", line: try at("basic-calloc-200", b)),
                     Block("realloc", 300, "lv_leak_realloc_300", line: try at("basic-realloc-300", b))]
        expect("/usr/bin/lv-leak-basic", basic + Self.staticBaseline)
        expect("/lv-leak-basic-dynamic", basic)
        #expect(final["/lv-alloc-clean-dynamic"] == nil || final["/lv-alloc-clean-dynamic"]?.blocks.isEmpty == true,
                "\(final["/lv-alloc-clean-dynamic"].map { "\($0)" } ?? "")")
        expect("/usr/bin/lv-leak-realloc",
               [Block("realloc", 4096, "lv_grow_to_4096", line: try at("realloc-grow-4096", "lv-leak-realloc.c"))] + Self.staticBaseline)
        let leakLine = try at("threads-leak", "lv-leak-threads.c")
        let threads = (0..<4).flatMap { i in Array(repeating: Block("malloc", 64 * (i + 1), "lv_thread_leak_block", line: leakLine), count: i + 1) }
        // The threads' DTVs: allocate_dtv is inlined into _dl_allocate_tls in the static build; the
        // host's ld.so has no symbol table of its own, and its name comes from libc6-dbg's separate
        // debug file (/usr/lib/debug/.build-id, found by build ID).
        let dtv = { (caller: String) in Array(repeating: Block("calloc", 272, caller), count: 4) }
        expect("/usr/bin/lv-leak-threads", threads + dtv("_dl_allocate_tls") + Self.staticBaseline)
        expect("/lv-leak-threads-dynamic", threads + dtv("allocate_dtv"))
        let c = "lv-leak-cxx.cpp"
        let cxx = [Block("operator new", 4, "lv_leak_new_int", line: try at("cxx-new-int", c)),
                   Block("operator new[]", 100, "lv_leak_new_char_array", line: try at("cxx-new-char-array", c)),
                   Block("operator new", 48, "lv_leak_new_widget", line: try at("cxx-new-widget", c))]
        // libstdc++'s emergency pool, from a static constructor: named in the static build; the
        // host's libstdc++ has no symbol table, so there it is named by the module.
        let pool = Block("malloc", 72704, "eh_alloc"), dynamicPool = Block("malloc", 72704, "libstdc++.so.6.0.30")
        // The deliberate new[]/delete mismatch (LEAK-PROGRAMS.md): found at the delete, line 155.
        let mismatch = ["mismatched deallocation: operator new[] released by operator delete in lv_mismatched_delete:\(try at("cxx-new-int-array-mismatch", c) + 4)"]
        expect("/usr/bin/lv-leak-cxx", cxx + [pool] + Self.staticBaseline, findings: mismatch)
        expect("/lv-leak-cxx-dynamic", cxx + [dynamicPool], findings: mismatch)
        let loopLine = try at("loop-leak-32", "lv-leak-loop.c")
        expect("/usr/bin/lv-leak-loop", Array(repeating: Block("malloc", 32, "lv_loop_leak_32", line: loopLine), count: 25) + Self.staticBaseline)
        // Another allocator than glibc's: its standard names and its own API (mallocx/rallocx/sdallocx,
        // tc_malloc/tc_realloc/tc_free_sized, mi_zalloc/mi_realloc/mi_free_size), with valgrind's classes.
        let a = "lv-leak-allocators.c"
        let viaAllocator = [Block("malloc", 100, "lv_leak_malloc_100", line: try at("alloc-malloc-100", a)),
                            Block("calloc", 200, "lv_leak_calloc_200", line: try at("alloc-calloc-200", a)),
                            Block("realloc", 300, "lv_leak_own_300", line: try at("alloc-own-realloc-300", a)),
                            Block("malloc", 48, "lv_leak_tree", line: try at("alloc-tree-root", a)),
                            Block("malloc", 24, "lv_leak_tree", line: try at("alloc-tree-child", a))]
        // jemalloc and tcmalloc bring libstdc++ (for their operator new) and its emergency pool; tcmalloc's
        // start-up makes two blocks of its own (MallocExtension's default instance, replaced and so lost).
        expect("/lv-leak-jemalloc", viaAllocator + [dynamicPool])
        expect("/lv-leak-tcmalloc", viaAllocator + [dynamicPool, Block("operator new", 8, "_ZN15MallocExtension8RegisterEPS_"),
                                                    Block("operator new", 16, "_ZN13TCMallocGuardC1Ev")])
        expect("/lv-leak-mimalloc", viaAllocator)
        expect("/lv-leak-jemalloc-static", viaAllocator)
        expect("/lv-leak-basic-preload", basic + [dynamicPool])
        expect("/lv-leak-deep", [Block("malloc", 64, "lv_deep_1", line: try at("deep-malloc-64", "lv-leak-deep.c")),
                                 Block("calloc", 96, "lv_shallow_1", line: try at("deep-calloc-96", "lv-leak-deep.c"))])
        // Classes, exact for the three: the allocators' own anonymous memory (jemalloc's tcache bins with
        // stale pointers to regions they handed out, its extent headers naming each slab's first region)
        // is not a root (AllocatorArena).
        let wantedClasses = [100: "definitely lost", 200: "definitely lost", 300: "definitely lost", 48: "definitely lost", 24: "indirectly lost"]
        let classes = try Self.classesBySize(Data(contentsOf: report))
        for allocator in Self.otherAllocators + ["jemalloc-static"] {
            let found = (classes["/lv-leak-\(allocator)"] ?? [:]).filter { wantedClasses[$0.key] != nil }
            #expect(found == wantedClasses, "\(allocator): \(classes["/lv-leak-\(allocator)"] ?? [:])")
        }
        try checkDeepStacks(report: report, program: bin.appendingPathComponent("lv-leak-deep").path)
        let preloaded = classes["/lv-leak-basic-preload"] ?? [:]
        #expect(preloaded[100] == "definitely lost" && preloaded[200] == "definitely lost" && preloaded[300] == "definitely lost",
                "lv-leak-basic under jemalloc: \(preloaded)")
        let tree = final["/usr/bin/lv-leak-tree"]
        #expect(tree?.blocks.filter { $0.caller.hasPrefix("lv_") }.count == 16)
        #expect(tree?.blocks.filter { $0.caller.hasPrefix("lv_") }.reduce(0) { $0 + $1.size } == 640)
    }

    /// lv-leak-deep (-O2, no frame pointers): each leak's stack, 16 frames deep, is found through
    /// CFI exactly as valgrind finds it (function and line of every frame, up to `main`, where
    /// valgrind stops), and the shallow one goes on below `main` into libc.
    func checkDeepStacks(report: URL, program: String) throws {
        let stacks = try Self.stacksBySize(Data(contentsOf: report), executable: "/lv-leak-deep")
        let d = "lv-leak-deep.c"
        let deep = ["malloc", "lv_deep_1"] + (2...15).map { "lv_deep_\($0)" }
        #expect(stacks[64]?.map(\.function) == deep, "\(stacks)")
        #expect(stacks[64]?[1].line == (try tagLine("deep-malloc-64", d)))
        let shallow = ["calloc", "lv_shallow_1", "lv_shallow_2", "lv_shallow_3", "main"]
        #expect(stacks[96].map { Array($0.prefix(5).map(\.function)) } == shallow, "\(stacks)")
        #expect(stacks[96]?[1].line == (try tagLine("deep-calloc-96", d)))
        #expect((stacks[96]?.count ?? 0) > 5, "below main: \(stacks[96] ?? [])")
        // valgrind on the host, on the same file, with the same depth.
        guard let valgrind = HostTools.which("valgrind") else {
            Issue.record("valgrind is not installed (scripts/setup.sh)")
            return
        }
        let xml = FileManager.default.temporaryDirectory.appendingPathComponent("lv-deep-\(getpid())-\(UUID().uuidString).xml")
        defer { try? FileManager.default.removeItem(at: xml) }
        _ = try HostTools.run(valgrind, ["--xml=yes", "--xml-file=\(xml.path)", "--leak-check=full", "--num-callers=16", program])
        let theirs = Self.valgrindLeakStacks(try String(contentsOf: xml, encoding: .utf8))
        for size in [64, 96] {
            let wanted = theirs[size] ?? []
            #expect(!wanted.isEmpty, "valgrind found no \(size)-byte leak")
            let ours = (stacks[size] ?? []).prefix(wanted.count)
            #expect(ours.map(\.function) == wanted.map(\.function), "\(size): ours \(Array(ours)), valgrind's \(wanted)")
            // Lines of the program's own frames (valgrind has none for the allocator's).
            #expect(ours.dropFirst().map(\.line) == wanted.dropFirst().map(\.line), "\(size): ours \(Array(ours)), valgrind's \(wanted)")
        }
    }

    struct Frame: Equatable, CustomStringConvertible {
        var function: String
        var line: Int?
        var description: String { "\(function):\(line.map(String.init) ?? "-")" }
    }

    /// One executable's groups in a JSON report, by block size: the frames' functions and lines, the
    /// first named by the allocator function the ledger recorded (libc's symbol table has several
    /// names at calloc's address, `__libc_calloc` among them; valgrind names its own replacement).
    static func stacksBySize(_ json: Data, executable: String) throws -> [Int: [Frame]] {
        let root = try JSONSerialization.jsonObject(with: json) as? [String: Any] ?? [:]
        var result: [Int: [Frame]] = [:]
        for process in root["processes"] as? [[String: Any]] ?? [] where process["executable"] as? String == executable {
            for group in process["groups"] as? [[String: Any]] ?? [] {
                var frames = (group["frames"] as? [[String: Any]] ?? []).map { Frame(function: callerName($0), line: $0["line"] as? Int) }
                if !frames.isEmpty, let allocator = group["function"] as? String { frames[0].function = allocator }
                for size in blockSizes(group) { result[size] = frames }
            }
        }
        return result
    }

    /// valgrind's XML: each definite leak's stack (function and line per frame) by its size.
    static func valgrindLeakStacks(_ xml: String) -> [Int: [Frame]] {
        func field(_ name: String, in text: Substring) -> String? {
            guard let open = text.range(of: "<\(name)>"), let close = text.range(of: "</\(name)>", range: open.upperBound..<text.endIndex)
            else { return nil }
            return String(text[open.upperBound..<close.lowerBound])
        }
        var result: [Int: [Frame]] = [:]
        for error in xml.components(separatedBy: "<error>").dropFirst() {
            let text = Substring(error)
            guard field("kind", in: text) == "Leak_DefinitelyLost", let bytes = field("leakedbytes", in: text).flatMap({ Int($0) }),
                  let stack = field("stack", in: text) else { continue }
            result[bytes] = stack.components(separatedBy: "<frame>").dropFirst().map { frame in
                let f = Substring(frame)
                return Frame(function: field("fn", in: f) ?? "?", line: field("line", in: f).flatMap { Int($0) })
            }
        }
        return result
    }

    /// Per executable, the reachability class of each block size it holds (sizes unique in it).
    static func classesBySize(_ json: Data) throws -> [String: [Int: String]] {
        let root = try JSONSerialization.jsonObject(with: json) as? [String: Any] ?? [:]
        var result: [String: [Int: String]] = [:]
        for process in root["processes"] as? [[String: Any]] ?? [] {
            guard let executable = process["executable"] as? String else { continue }
            for group in process["groups"] as? [[String: Any]] ?? [] {
                for size in blockSizes(group) { result[executable, default: [:]][size] = group["reachability"] as? String ?? "not scanned" }
            }
        }
        return result
    }

    /// Per executable, its outstanding blocks (one entry per block) and findings, from a JSON report.
    /// Blocks counted by (allocator, size, caller, line), so order does not matter.
    static func tally(_ blocks: [Block]) -> [Block: Int] {
        blocks.reduce(into: [:]) { $0[$1, default: 0] += 1 }
    }

    /// Findings read as "kind: allocatedBy released by releasedBy in caller:line".
    func processes(_ json: Data) throws -> [String: (blocks: [Block], findings: [String])] {
        let root = try JSONSerialization.jsonObject(with: json) as? [String: Any] ?? [:]
        var result: [String: (blocks: [Block], findings: [String])] = [:]
        for process in root["processes"] as? [[String: Any]] ?? [] {
            guard let executable = process["executable"] as? String else { continue }
            var blocks: [Block] = []
            for group in process["groups"] as? [[String: Any]] ?? [] {
                let frames = group["frames"] as? [[String: Any]] ?? []
                let caller = frames.count > 1 ? frames[1] : [:]
                let name = Self.callerName(caller)
                let line = (caller["file"] as? String)?.contains("/programs/") == true ? caller["line"] as? Int : nil
                for size in Self.blockSizes(group) {
                    blocks.append(Block(group["function"] as? String ?? "?", size, name, line: line))
                }
            }
            let findings = (process["findings"] as? [[String: Any]] ?? []).map { f -> String in
                let frames = f["frames"] as? [[String: Any]] ?? []
                let caller = frames.count > 1 ? frames[1] : [:]
                return "\(f["kind"] as? String ?? "?"): \(f["allocatedBy"] as? String ?? "-") released by \(f["releasedBy"] as? String ?? "?")"
                    + " in \(Self.callerName(caller)):\(caller["line"] as? Int ?? 0)"
            }
            result[executable] = (blocks, findings)
        }
        return result
    }

    /// The size of each block of a JSON report group: the report lists at most 16 sizes per
    /// group, and the rest share the remaining bytes.
    static func blockSizes(_ group: [String: Any]) -> [Int] {
        let sizes = group["sizes"] as? [Int] ?? [], count = group["blocks"] as? Int ?? 0, bytes = group["bytes"] as? Int ?? 0
        let rest = count - sizes.count
        return sizes + (rest > 0 ? Array(repeating: (bytes - sizes.reduce(0, +)) / rest, count: rest) : [])
    }

    /// A caller frame's name without C++ mangling noise: `_Z15lv_leak_new_intv` →
    /// `lv_leak_new_int`; the emergency pool's constructor → `eh_alloc`; a frame in a module
    /// without symbols → the module's file name.
    static func callerName(_ frame: [String: Any]) -> String {
        guard let raw = frame["function"] as? String else {
            return (frame["module"] as? String).map { String($0.split(separator: "/").last ?? "?") } ?? "?"
        }
        if raw.contains("eh_alloc") || raw.contains("__gnu_cxx9__freeres") || raw.contains("_GLOBAL__sub_I") { return "eh_alloc" }
        guard raw.hasPrefix("_Z") else { return raw }
        var digits = "", rest = raw.dropFirst(2)
        while let c = rest.first, c.isNumber { digits.append(c); rest = rest.dropFirst() }
        guard let n = Int(digits) else { return raw }
        return String(rest.prefix(n))
    }

    /// Source line of `/* LV-ALLOC tag */` in a guest program.
    func tagLine(_ tag: String, _ file: String) throws -> Int {
        let source = try String(contentsOf: LeakVisorProcess.packageRoot.appendingPathComponent("guest-images/default/programs/\(file)"),
                                encoding: .utf8)
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
        guard let index = lines.firstIndex(where: { $0.contains("/* LV-ALLOC \(tag) */") }) else { throw CocoaError(.fileReadCorruptFile) }
        return index + 1
    }

    private func md5sums(_ text: String, _ marker: String) -> [String] {
        let lines = text.split(separator: "\n").map(String.init)
        guard let start = lines.firstIndex(of: "\(marker)-BEGIN"), let end = lines[start...].firstIndex(of: "\(marker)-END") else { return [] }
        return lines[(start + 1)..<end].compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    private func hostMD5(_ paths: [String]) throws -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/md5sum")
        p.arguments = paths
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return text.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
    }
}
