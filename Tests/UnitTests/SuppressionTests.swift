import LeakAnalysis
import LeakSuppressions
import Reachability
import Testing

/// Suppressions in valgrind's and LeakSanitizer's own syntax over a real report (lv-leak-tree):
/// each suppresses exactly the groups it names, and the report counts what it removed.
@Suite struct SuppressionTests {
    static func apply(_ text: String, to report: LeakReport? = nil) throws -> (LeakReport, LeakReport) {
        let original = try report ?? ReportFixtures.leakTree()
        return (original, SuppressionList(try SuppressionList.parse(text, file: "test.supp")).apply(to: original))
    }

    /// The groups a suppression removed, as (class, second frame's function).
    static func removed(_ before: LeakReport, _ after: LeakReport) -> [AllocationGroup] {
        var left = after.processes.flatMap(\.groups)
        var gone: [AllocationGroup] = []
        for group in before.processes.flatMap(\.groups) {
            if let i = left.firstIndex(of: group) { left.remove(at: i) } else { gone.append(group) }
        }
        return gone
    }

    static func functions(_ group: AllocationGroup) -> [String] { group.frames.compactMap(\.function) }

    @Test func valgrindEntrySuppressesItsStackAndKindOnly() throws {
        let (before, after) = try Self.apply("""
            # the tree's root node
            {
               tree-root
               Memcheck:Leak
               match-leak-kinds: definite
               fun:malloc
               fun:lv_tree_node
            }
            """)
        let gone = Self.removed(before, after)
        #expect(gone.count == 1)
        #expect(gone.first?.reachability == .directLeak && Self.functions(gone[0]).dropFirst().first == "lv_tree_node")
        // The indirect nodes of the same site stay: the entry names definite leaks only.
        #expect(after.processes[0].groups.contains { $0.reachability == .indirectLeak && Self.functions($0).contains("lv_tree_node") })
        #expect(after.suppressed == [SuppressedCount(name: "tree-root", file: "test.supp", groups: 1, blocks: 1, bytes: 24)])
        #expect(after.summary.classes.definitelyLost == BlockTotal(blocks: before.summary.classes.definitelyLost.blocks - 1,
                                                                   bytes: before.summary.classes.definitelyLost.bytes - 24))
        #expect(after.processes[0].scan?.classes.definitelyLost.bytes == before.processes[0].scan!.classes.definitelyLost.bytes - 24)
        #expect(after.summary.allocationSites == before.summary.allocationSites - 1)
        #expect(after.summary.outstandingBytes == before.summary.outstandingBytes)   // still in use
    }

    @Test func withoutMatchLeakKindsEveryKindMatches() throws {
        let (before, after) = try Self.apply("{\n tree\n Memcheck:Leak\n fun:malloc\n fun:lv_tree_node\n}\n")
        let gone = Self.removed(before, after)
        let expected = before.processes[0].groups.filter { Self.functions($0).dropFirst().first == "lv_tree_node" }
        #expect(gone.count == expected.count && gone.count == 7)
        #expect(after.suppressed?.first?.bytes == 7 * 24)
    }

    @Test func ellipsisAndWildcardsMatchFramesAnywhereInTheStack() throws {
        let (before, after) = try Self.apply("""
            {
               through-main
               Memcheck:Leak
               match-leak-kinds: definite,possible
               fun:mall?c
               ...
               fun:ma*n
            }
            """)
        let expected = before.processes[0].groups.filter {
            [.directLeak, .possiblyLost].contains($0.reachability) && Self.functions($0).contains("main")
        }
        let gone = Self.removed(before, after)
        #expect(gone.count == expected.count && !gone.isEmpty)
        #expect(gone.allSatisfy { $0.reachability != .indirectLeak && $0.reachability != .reachable })
    }

    @Test func objAndSrcLinesMatchModuleAndSourceLine() throws {
        let (before, after) = try Self.apply("""
            {
               interior
               Memcheck:Leak
               obj:/usr/bin/lv-leak-*
               src:lv-leak-tree.c:126
            }
            {
               wrong-line
               Memcheck:Leak
               fun:malloc
               src:lv-leak-tree.c:127
            }
            """)
        let gone = Self.removed(before, after)
        #expect(gone.count == 1 && gone[0].reachability == .possiblyLost)
        #expect(after.suppressed?.map(\.groups) == [1, 0])
    }

    @Test func entriesOfOtherKindsAndToolsAreReadAndIgnored() throws {
        let (before, after) = try Self.apply("""
            {
               cond
               Memcheck:Cond
               fun:malloc
            }
            {
               param
               Memcheck:Param
               write(buf)
               fun:malloc
            }
            {
               helgrind
               Helgrind:Race
               fun:*
            }
            """)
        #expect(after.processes == before.processes)
        #expect(after.suppressed == [])
    }

    @Test func leakSanitizerPatternsMatchFunctionsFilesAndModules() throws {
        let tree = try ReportFixtures.leakTree()
        func removed(_ list: String) throws -> [AllocationGroup] {
            let (before, after) = try Self.apply(list, to: tree)
            return Self.removed(before, after)
        }
        let xor = try removed("# one function\nleak:lv_xor_hide\n")
        #expect(xor.count == 1 && Self.functions(xor[0]).contains("lv_xor_hide"))
        // A file name matches every leak from it, and never still-reachable groups.
        let file = try removed("leak:lv-leak-tree.c")
        #expect(file.count == tree.processes[0].groups.filter { $0.reachability?.isLeak == true }.count)
        #expect(file.allSatisfy { $0.reachability != .reachable })
        // Substring, anchors and wildcards as LeakSanitizer's TemplateMatch.
        #expect(try removed("leak:cycle_n").count == 2)
        #expect(try removed("leak:^cycle").isEmpty)
        #expect(try removed("leak:^lv_cycle").count == 2)
        #expect(try removed("leak:_node$").count == 9)   // lv_tree_node (7) and lv_cycle_node (2)
        #expect(try removed("leak:lv_*_keep").count == 1)
        #expect(try removed("leak:lv_interior_kee?").isEmpty)   // '?' is literal for LeakSanitizer
        #expect(try removed("leak:/usr/bin/lv-leak-tree").count == file.count)
        #expect(try removed("leak:no_such_function").isEmpty)
    }

    @Test func malformedFilesAreRefusedWithTheirLine() {
        #expect(throws: SuppressionError(file: "test.supp", line: 1, reason: "suppression opened here is never closed with '}'")) {
            _ = try SuppressionList.parse("{\n a\n Memcheck:Leak\n fun:x\n", file: "test.supp")
        }
        #expect(throws: SuppressionError.self) {
            _ = try SuppressionList.parse("{\n a\n Memcheck:Leak\n match-leak-kinds: lost\n fun:x\n}", file: "test.supp")
        }
        #expect(throws: SuppressionError(file: "test.supp", line: 2, reason: "LeakSanitizer reads 'leak:' suppressions only, found 'race:'")) {
            _ = try SuppressionList.parse("leak:a\nrace:b\n", file: "test.supp")
        }
        #expect(throws: SuppressionError.self) {
            _ = try SuppressionList.parse("{\n a\n Memcheck:Leak\n}", file: "test.supp")
        }
    }

    @Test func generatedEntriesSuppressEveryLeakAndNothingElse() throws {
        let tree = try ReportFixtures.leakTree()
        let entries = SuppressionWriter.valgrindEntries(for: tree)
        #expect(entries.contains("   Memcheck:Leak\n   match-leak-kinds: definite\n   fun:malloc\n   fun:lv_tree_node\n"))
        let after = SuppressionList(try SuppressionList.parse(entries, file: "gen.supp")).apply(to: tree)
        #expect(after.processes[0].groups.allSatisfy { $0.reachability == .reachable })
        #expect(after.processes[0].groups.count == tree.processes[0].groups.filter { $0.reachability == .reachable }.count)
        #expect(after.summary.classes.definitelyLost == BlockTotal())
        #expect(after.summary.classes.stillReachable == tree.summary.classes.stillReachable)
    }

    @Test func theTextReportListsTheSuppressionsUsed() throws {
        let (_, after) = try Self.apply("leak:lv_xor_hide\nleak:unused\n")
        let text = LeakReportText.render(after)
        #expect(text.contains("Suppressions used:\n  count      bytes template\n      1         40 leak:lv_xor_hide\n"))
        #expect(!text.contains("leak:unused"))
    }

    @Test func wildcardPatternsMatchWholeNames() {
        #expect(WildcardPattern("a*c").matches("abbbc"))
        #expect(WildcardPattern("a*c").matches("ac"))
        #expect(!WildcardPattern("a*c").matches("abcd"))
        #expect(WildcardPattern("*").matches(""))
        #expect(WildcardPattern("?b*").matches("abzz"))
        #expect(!WildcardPattern("?").matches(""))
        #expect(WildcardPattern("*a*a*a*").matches("banana a"))
        #expect(!WildcardPattern("*a*a*a*a*").matches("banana"))
    }
}

/// Suppressions over counts no run writes (a hand-edited report file): nothing traps.
@Suite struct SuppressionHostileCountsTests {
    @Test func negativeAndExtremeBlockCountsAreSubtractedSafely() throws {
        var report = try ReportFixtures.leakTree()
        let index = try #require(report.processes[0].groups.firstIndex { $0.reachability == .directLeak })
        report.processes[0].groups[index].blocks = -1
        report.summary.classes.definitelyLost.blocks = Int.max
        let after = SuppressionList(try SuppressionList.parse("leak:*", file: "all.txt")).apply(to: report)
        #expect(after.summary.classes.definitelyLost.blocks == 0)
        report.processes[0].groups[index].blocks = Int.max
        report.summary.classes.definitelyLost.blocks = Int.min
        #expect(SuppressionList(try SuppressionList.parse("leak:*", file: "all.txt")).apply(to: report).summary.classes.definitelyLost.blocks == 0)
    }
}
