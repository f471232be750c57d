import LeakJournal
import Testing

/// Per-site differences between two samples: new, grown, shrunk, gone; unchanged left out.
@Suite struct SiteDiffTests {
    let a = JournalSample(id: 1, seconds: 10, unixTime: 0, reason: "every 10 s", final: false, totals: SiteTotals())
    let b = JournalSample(id: 5, seconds: 50, unixTime: 0, reason: "every 10 s", final: false, totals: SiteTotals())

    @Test func newGrownShrunkAndGoneSitesWithSignedDeltas() {
        let grown = JournalFixtures.key(0x1), new = JournalFixtures.key(0x2), gone = JournalFixtures.key(0x3)
        let same = JournalFixtures.key(0x4), shrunk = JournalFixtures.key(0x5)
        let before: [SiteOfProgram: SiteTotals] = [
            grown: SiteTotals(blocks: 2, bytes: 64, leakedBlocks: 1, leakedBytes: 32), gone: SiteTotals(blocks: 1, bytes: 10),
            same: SiteTotals(blocks: 3, bytes: 30), shrunk: SiteTotals(blocks: 4, bytes: 400),
        ]
        let after: [SiteOfProgram: SiteTotals] = [
            grown: SiteTotals(blocks: 5, bytes: 160, leakedBlocks: 4, leakedBytes: 128), new: SiteTotals(blocks: 1, bytes: 1000, leakedBlocks: 1, leakedBytes: 1000),
            same: SiteTotals(blocks: 3, bytes: 30), shrunk: SiteTotals(blocks: 1, bytes: 100),
        ]
        let diff = SiteDiff.compare(from: a, before, to: b, after, describe: { _ in nil })
        #expect(diff.sites.map(\.siteKey) == [new, grown, gone, shrunk].map(\.siteKey), "largest growth first")
        let g = diff.sites[1]
        #expect(g.bytesDelta == 96 && g.blocksDelta == 3 && g.leakedBytesDelta == 96 && g.leakedBlocksDelta == 3 && !g.isNew)
        #expect(diff.sites[0].isNew && diff.sites[0].bytesDelta == 1000)
        #expect(diff.sites[2].isGone && diff.sites[2].bytesDelta == -10)
        #expect(diff.summary.newSites == 1 && diff.summary.goneSites == 1 && diff.summary.grownSites == 2 && diff.summary.shrunkSites == 2)
        #expect(diff.summary.bytesDelta == 1000 + 96 - 10 - 300)
        #expect(diff.summary.leakedBytesDelta == 1096)
    }

    @Test func hugeTotalsClampInsteadOfTrapping() {
        let key = JournalFixtures.key(0x1)
        let diff = SiteDiff.compare(from: a, [key: SiteTotals(blocks: 0, bytes: 0)], to: b, [key: SiteTotals(blocks: 1, bytes: .max)],
                                    describe: { _ in nil })
        #expect(diff.sites[0].bytesDelta == .max)
        let back = SiteDiff.compare(from: a, [key: SiteTotals(blocks: 1, bytes: .max)], to: b, [key: SiteTotals(blocks: 0, bytes: 0)],
                                    describe: { _ in nil })
        #expect(back.sites[0].bytesDelta == -.max)
    }
}
