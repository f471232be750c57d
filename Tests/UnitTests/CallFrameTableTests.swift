import Foundation
import Testing

@testable import DebugInfo

/// The compact CFI table: built from Debian's real libc, looked up by file offset, merged, and
/// walked over hostile stacks without trapping.
@Suite struct CallFrameTableTests {
    static let libc = "/lib/x86_64-linux-gnu/libc.so.6"

    @Test func debiansLibcHasARuleAtEveryFunctionEntry() throws {
        let file = try ELFFile(path: Self.libc)
        let started = Date()
        let table = CallFrameTable(file: file)
        let seconds = Date().timeIntervalSince(started)
        #expect(table.rows.count > 10_000, "\(table.rows.count) rows in \(seconds) s")
        // Every FDE start in .eh_frame_hdr is a function entry: CFA = rsp + 8, return address at CFA − 8.
        let header = try #require(try file.section(named: ".eh_frame_hdr"))
        let starts = CallFrameTable.functionStarts(header)
        #expect(starts.count > 2_000)
        let text = try #require(file.loadSegments.first { $0.isExecutable })
        var checked = 0
        for start in starts where start >= text.virtualAddress && start < text.virtualAddress + text.fileSize {
            let rule = table.rule(atFileOffset: start - text.virtualAddress + text.offset)
            // A few hand-written entry points describe themselves otherwise (signal trampolines).
            if rule == .functionEntry { checked += 1 }
        }
        #expect(checked > starts.count * 95 / 100)
        // Rows are sorted, disjoint, and neighbours with one rule are merged.
        for (a, b) in zip(table.rows, table.rows.dropFirst()) {
            #expect(a.end <= b.start)
            if a.end == b.start { #expect(a.rule != b.rule) }
        }
    }

    @Test func lookupsAndMerging() {
        let entry = CallFrameRule.functionEntry
        let pushed = CallFrameRule(base: .stackPointer, cfaOffset: 16, savedFramePointer: -16)
        let framed = CallFrameRule(base: .framePointer, cfaOffset: 16, savedFramePointer: -16)
        let table = CallFrameTable(rows: [CallFrameRow(start: 0x1001, length: 3, rule: framed),
                                          CallFrameRow(start: 0x1000, length: 1, rule: entry),
                                          CallFrameRow(start: 0x1004, length: 4, rule: framed),
                                          CallFrameRow(start: 0x1006, length: 4, rule: pushed),   // overlaps: dropped
                                          CallFrameRow(start: 0x2000, length: 0, rule: entry)])  // empty: dropped
        #expect(table.rows == [CallFrameRow(start: 0x1000, length: 1, rule: entry), CallFrameRow(start: 0x1001, length: 7, rule: framed)])
        #expect(table.rule(atFileOffset: 0xFFF) == nil)
        #expect(table.rule(atFileOffset: 0x1000) == entry)
        #expect(table.rule(atFileOffset: 0x1007) == framed)
        #expect(table.rule(atFileOffset: 0x1008) == nil)
        #expect(CallFrameTable(rows: []).rule(atFileOffset: 0) == nil)
    }

    @Test func ehFrameHeaderTable() {
        // version 1, eh_frame_ptr pcrel|sdata4, count udata4, table datarel|sdata4; two entries.
        var bytes: [UInt8] = [1, 0x1B, 0x03, 0x3B, 0, 0, 0, 0, 2, 0, 0, 0]
        bytes += [0x00, 0x10, 0, 0, 0, 0, 0, 0]          // +0x1000
        bytes += [0xF0, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]    // −0x10
        #expect(CallFrameTable.functionStarts(bytes, sectionAddress: 0x5000) == [0x4FF0, 0x6000])
        // A count larger than the section, another encoding, a short section: nothing.
        #expect(CallFrameTable.functionStarts([1, 0x1B, 0x03, 0x3B, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0], sectionAddress: 0).isEmpty)
        #expect(CallFrameTable.functionStarts([1, 0x1B, 0x03, 0x1B, 0, 0, 0, 0, 0, 0, 0, 0], sectionAddress: 0).isEmpty)
        #expect(CallFrameTable.functionStarts([1, 0x1B], sectionAddress: 0).isEmpty)
    }

    /// A stack laid out by hand: the allocator entered from f (rsp-based CFA, 24 bytes of frame),
    /// called from g (rbp-based, saved rbp), called from h (no CFI: frame pointers).
    @Test func walksMixedFramesAndStopsAtTheOutermost() {
        let fCode: UInt64 = 0x40_1000, gCode: UInt64 = 0x40_2000, hCode: UInt64 = 0x40_3000, startCode: UInt64 = 0x40_4000
        let rules: [UInt64: CallFrameRule] = [
            fCode: CallFrameRule(base: .stackPointer, cfaOffset: 32),
            gCode: CallFrameRule(base: .framePointer, cfaOffset: 16, savedFramePointer: -16),
            startCode: CallFrameRule(base: .stackPointer, cfaOffset: 8, returnAddress: nil)]
        let sp: UInt64 = 0x7FFF_0000
        // [sp] = return into f; f's frame 24 bytes, then return into g at sp+32.
        // g's rbp = sp+48: [rbp] = h's rbp (sp+80), [rbp+8] = return into h.
        // h (frame pointers): [sp+80] = 0 rbp, [sp+88] = return into _start.
        let memory: [UInt64: UInt64] = [sp: fCode + 5, sp + 32: gCode + 5, sp + 48: sp + 80, sp + 56: hCode + 5,
                                        sp + 80: sp + 200, sp + 88: startCode + 5]
        let walker = CallFrameWalker(maximumFrames: 12)
        let walk = walker.walk(site: 0x7F00_0000_1000, returnAddress: fCode + 5, stackPointer: sp, framePointer: sp + 48,
                               rule: { pc in rules.first { $0.key <= pc && pc < $0.key + 0x100 }?.value },
                               read: { memory[$0] })
        #expect(walk.frames == [0x7F00_0000_1000, fCode + 5, gCode + 5, hCode + 5, startCode + 5])
        #expect(walk.counts == CallFrameWalker.Counts(callFrameInformation: 2, framePointer: 1))
        // The frame limit counts the allocator's own frame.
        #expect(CallFrameWalker(maximumFrames: 3).walk(site: 1 << 20, returnAddress: fCode + 5, stackPointer: sp, framePointer: 0,
                                                       rule: { _ in rules[fCode] }, read: { memory[$0] }).frames.count == 3)
    }

    @Test func hostileStacksEndTheWalk() {
        let sp: UInt64 = 0x7FFF_0000
        let walker = CallFrameWalker(maximumFrames: 64)
        // A frame that does not move up the stack, a CFA past 8 MiB, an offset that wraps, a loop of
        // rbp pointing at itself, a kernel address: each ends the walk, none traps.
        let cases: [(CallFrameRule?, [UInt64: UInt64], UInt64)] = [
            (CallFrameRule(base: .stackPointer, cfaOffset: -64), [:], 0),
            (CallFrameRule(base: .stackPointer, cfaOffset: Int32.max), [:], 0),
            (CallFrameRule(base: .framePointer, cfaOffset: Int32.min), [:], 0),
            (nil, [sp + 16: sp + 16, sp + 24: 0x40_1000], sp + 16),
            (CallFrameRule.functionEntry, [sp + 8: 0xFFFF_FFFF_8100_0000], 0),
        ]
        for (rule, memory, rbp) in cases {
            let walk = walker.walk(site: 0x40_0000, returnAddress: 0x40_1000, stackPointer: sp, framePointer: rbp,
                                   rule: { _ in rule }, read: { memory[$0] ?? 0x40_1000 })
            #expect(walk.frames.count <= 3, "\(String(describing: rule)): \(walk.frames.map(hex))")
        }
        #expect(walker.walk(site: 0x40_0000, returnAddress: 0x40_1000, stackPointer: .max - 8, framePointer: .max,
                            rule: { _ in .functionEntry }, read: { _ in 0x40_1000 }).frames.count <= 64)
    }
}
