import LeakJournal
import Testing

/// Growth rates: the least-squares line and the criterion that admits a site.
@Suite struct GrowthRankingTests {
    func series(_ bytes: [UInt64?], every step: Double = 10) -> [(seconds: Double, totals: SiteTotals)] {
        bytes.enumerated().compactMap { index, value in value.map { (Double(index) * step, SiteTotals(blocks: 1, bytes: $0)) } }
    }

    @Test func theLineOfExactPointsIsExact() throws {
        let line = try #require(GrowthRanking.line([(0, 5), (1, 7), (2, 9), (3, 11)]))
        #expect(abs(line.slope - 2) < 1e-12)
        #expect(abs(line.fit - 1) < 1e-12)
        #expect(line.nonShrinking == 1)
        #expect(GrowthRanking.line([(1, 1)]) == nil)
        #expect(GrowthRanking.line([(1, 1), (1, 2)]) == nil, "no spread in time: no slope")
    }

    @Test func aSteadyGrowerIsRankedWithItsRateAndOthersAreNot() {
        let times = (0..<8).map { Double($0) * 10 }
        let steady = JournalFixtures.key(0x1), fast = JournalFixtures.key(0x2), flat = JournalFixtures.key(0x3)
        let sawtooth = JournalFixtures.key(0x4), late = JournalFixtures.key(0x5), vanished = JournalFixtures.key(0x6)
        let all: [SiteOfProgram: [(seconds: Double, totals: SiteTotals)]] = [
            steady: series([100, 200, 300, 400, 500, 600, 700, 800]),  // 10 bytes/s
            fast: series([0, 1000, 2000, 3000, 4000, 5000, 6000, 7000]),  // 100 bytes/s
            flat: series([500, 500, 500, 500, 500, 500, 500, 500]),
            sawtooth: series([100, 900, 100, 900, 100, 900, 100, 1000]),
            late: series([nil, nil, nil, nil, nil, 100, 200, 300]),  // 3 samples: too few
            vanished: series([100, 200, 300, 400, 500, nil, nil, nil]),  // absent = 0 bytes: not steady
        ]
        let rates = GrowthRanking.rank(all, sampleTimes: times, describe: { _ in nil })
        #expect(rates.map(\.siteKey) == [fast.siteKey, steady.siteKey])
        #expect(abs(rates[0].bytesPerHour - 100 * 3600) < 1e-6)
        #expect(abs(rates[1].bytesPerHour - 10 * 3600) < 1e-6)
        #expect(rates[1].samples == 8 && rates[1].firstBytes == 100 && rates[1].lastBytes == 800)
        #expect(rates[1].function == "malloc")
    }

    @Test func oneShrinkingStepInManyStillCounts() {
        // 9 steps, one of them down: 89% not shrinking, a good line.
        let bytes: [UInt64?] = [100, 200, 300, 400, 380, 500, 600, 700, 800, 900]
        let times = (0..<10).map { Double($0) * 10 }
        let rates = GrowthRanking.rank([JournalFixtures.key(0x1): series(bytes)], sampleTimes: times, describe: { _ in nil })
        #expect(rates.count == 1)
        var strict = GrowthCriteria()
        strict.minimumNonShrinking = 1
        #expect(GrowthRanking.rank([JournalFixtures.key(0x1): series(bytes)], sampleTimes: times, criteria: strict,
                                   describe: { _ in nil }).isEmpty)
    }
}
