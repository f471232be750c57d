// lv-bench-realistic: a mixed C++ workload for measuring the overhead of
// LeakVisor's allocator breakpoints on a program that also computes, the way
// a service does (parse, hash, index, sort, look up), rather than one that
// only calls the allocator.
//
//   usage: lv-bench-realistic [ITEMS]     ITEMS >= 0, default 500
//
// For each of ITEMS items (all deterministic, no randomness between runs):
//   build:  generates a text document of 8..16 words from a syllable table,
//           splits it into a std::vector<std::string>, computes a keyed
//           multi-round digest of it, derives a sorted std::vector<int> of
//           32..63 values from the tokens, and stores it in a
//           std::map<std::string, std::vector<int>> under the key
//           "item-<first word>-<i>"; the key also goes into a
//           std::unordered_map<std::string, std::size_t> index.
//   lookup: looks up every item once in both maps (in a scattered order)
//           and every 4th one also under a key that is not present; reverses
//           the word order and upper-cases the document and digests that.
//   sort:   sorts all keys by their digest.
//   clear:  every container is cleared and destroyed.
// The timed region (clock_gettime(CLOCK_MONOTONIC)) covers all four phases,
// so it ends after the last delete. Output, via write(2) (no stdio buffers,
// no iostreams):
//
//   lv-prog lv-bench-realistic ready pid=PID
//   lv-prog lv-bench-realistic result items=N elapsed_ns=T checksum=C
//   lv-prog lv-bench-realistic done
//
// C is 16 hex digits; it depends only on N (the same in every run and in the
// static and dynamic builds), and keeps the compiler from dropping the work.
// Nothing leaks. Allocator call counts: LEAK-PROGRAMS.md ("Benchmark programs").
// Bad arguments: usage message, exit 2; a failed self-check: exit 3.
#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>
#include <unistd.h>

#define LV_NAME "lv-bench-realistic"

#include "lv-prog.h"

namespace {

// Rounds of the document digest: the compute per item.
constexpr int lv_digest_rounds = 64;

const char *const lv_syllables[] = {"ka", "lo", "mi", "ne", "ru", "sa", "te", "vo",
                                    "zi", "pa", "dre", "fla", "gon", "shi", "tor", "wex"};

std::uint64_t lv_mix(std::uint64_t h)
{
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

struct LvRng {
    std::uint64_t state;
    std::uint64_t next() { return lv_mix(state += 0x9e3779b97f4a7c15ull); }
    unsigned below(unsigned n) { return static_cast<unsigned>(next() % n); }
};

// A keyed multi-round FNV-1a/mix digest (a stand-in for a MAC over a request body).
__attribute__((noinline)) std::uint64_t lv_digest(const std::string &text, std::uint64_t key)
{
    std::uint64_t h = key ^ 0xcbf29ce484222325ull;
    for (int r = 0; r < lv_digest_rounds; r++) {
        for (unsigned char c : text)
            h = (h ^ c) * 0x100000001b3ull;
        h = lv_mix(h + static_cast<std::uint64_t>(r));
    }
    return h;
}

std::string lv_make_word(LvRng &rng)
{
    std::string word;
    unsigned n = 2 + rng.below(4);
    for (unsigned s = 0; s < n; s++)
        word += lv_syllables[rng.below(16)];
    return word;
}

std::string lv_make_document(LvRng &rng, unsigned words)
{
    std::string doc;
    for (unsigned w = 0; w < words; w++) {
        if (!doc.empty())
            doc += ' ';
        doc += lv_make_word(rng);
    }
    return doc;
}

std::vector<std::string> lv_tokenize(const std::string &doc)
{
    std::vector<std::string> tokens;
    std::size_t start = 0;
    while (start <= doc.size()) {
        std::size_t end = doc.find(' ', start);
        if (end == std::string::npos)
            end = doc.size();
        if (end > start)
            tokens.push_back(doc.substr(start, end - start));
        start = end + 1;
    }
    return tokens;
}

struct LvStore {
    std::map<std::string, std::vector<int>> by_key;
    std::unordered_map<std::string, std::size_t> index;
    std::vector<std::string> keys;
    std::vector<std::string> docs;
    std::vector<std::uint64_t> digests;
};

__attribute__((noinline)) std::uint64_t lv_build(LvStore &store, unsigned long items)
{
    std::uint64_t sum = 0;
    LvRng rng{0x1eac715013ull};
    for (unsigned long i = 0; i < items; i++) {
        std::string doc = lv_make_document(rng, 8 + rng.below(9));
        std::vector<std::string> tokens = lv_tokenize(doc);
        std::uint64_t digest = lv_digest(doc, i);
        std::vector<int> values;
        std::size_t count = 32 + (digest % 32);
        values.reserve(count);
        for (std::size_t v = 0; v < count; v++) {
            const std::string &t = tokens[v % tokens.size()];
            values.push_back(static_cast<int>(lv_mix(digest + v + t.size() * 131 + t[0]) & 0xfffff));
        }
        std::sort(values.begin(), values.end());
        std::string key = "item-" + tokens[0] + "-" + std::to_string(i);
        sum += digest ^ static_cast<std::uint64_t>(values[values.size() / 2]);
        store.index.emplace(key, i);
        store.keys.push_back(key);
        store.by_key.emplace(std::move(key), std::move(values));
        store.docs.push_back(std::move(doc));
        store.digests.push_back(digest);
    }
    return sum;
}

__attribute__((noinline)) std::uint64_t lv_lookup(const LvStore &store, unsigned long items)
{
    std::uint64_t sum = 0;
    for (unsigned long q = 0; q < items; q++) {
        std::size_t target = static_cast<std::size_t>((q * 7919u) % items);
        std::string probe = store.keys[target];
        auto it = store.by_key.find(probe);
        auto ix = store.index.find(probe);
        if (it == store.by_key.end() || ix == store.index.end() || ix->second != target)
            lv_fail("lookup");
        sum += static_cast<std::uint64_t>(it->second.front() + it->second.back()) * (q + 1);
        if (q % 4 == 0) {
            probe += "#missing";
            if (store.by_key.count(probe) != 0 || store.index.count(probe) != 0)
                lv_fail("negative lookup");
        }
        // String processing: reverse the word order, upper-case, digest.
        std::vector<std::string> tokens = lv_tokenize(store.docs[target]);
        std::reverse(tokens.begin(), tokens.end());
        std::string joined;
        for (const std::string &t : tokens) {
            if (!joined.empty())
                joined += ' ';
            joined += t;
        }
        std::transform(joined.begin(), joined.end(), joined.begin(),
                       [](unsigned char c) { return static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c); });
        sum = lv_mix(sum ^ lv_digest(joined, store.digests[target]));
    }
    return sum;
}

__attribute__((noinline)) std::uint64_t lv_sort_keys(const LvStore &store)
{
    std::vector<std::pair<std::uint64_t, std::string>> order;
    order.reserve(store.keys.size());
    for (std::size_t i = 0; i < store.keys.size(); i++)
        order.emplace_back(store.digests[i], store.keys[i]);
    std::sort(order.begin(), order.end());
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < order.size(); i++)
        sum = lv_mix(sum + order[i].first + order[i].second.size() * i);
    return sum;
}

__attribute__((noinline)) std::uint64_t lv_workload(unsigned long items)
{
    std::uint64_t checksum;
    {
        LvStore store;
        checksum = lv_build(store, items);
        if (store.by_key.size() != items || store.index.size() != items)
            lv_fail("build");
        checksum = lv_mix(checksum ^ lv_lookup(store, items));
        checksum = lv_mix(checksum ^ lv_sort_keys(store));
        store.by_key.clear();
        store.index.clear();
    }
    return checksum;
}

std::uint64_t lv_now_ns()
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        lv_fail("clock_gettime");
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

} // namespace

int main(int argc, char **argv)
{
    unsigned long items = 500;
    if (argc > 2 || (argc > 1 && lv_parse(argv[1], &items) != 0)) {
        lv_say("usage: %s [ITEMS (default 500)]\n", LV_NAME);
        return 2;
    }
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, static_cast<int>(getpid()));
    std::uint64_t start = lv_now_ns();
    std::uint64_t checksum = lv_workload(items);
    std::uint64_t elapsed = lv_now_ns() - start;
    lv_say("lv-prog %s result items=%lu elapsed_ns=%llu checksum=%016llx\n", LV_NAME, items,
           static_cast<unsigned long long>(elapsed), static_cast<unsigned long long>(checksum));
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
