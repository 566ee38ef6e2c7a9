// In-process A/B of old (plain) vs new (packed) BM25 search: same process, same data, rounds
// alternated (old first on even rounds, new first on odd), CPU time of the calling thread.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>
#include <cstdint>

extern "C" void* old_make(std::size_t, std::size_t, const std::int64_t*, const std::uint32_t*, const std::uint32_t*,
                          const float*, const float*);
extern "C" void old_search(void*, const std::uint32_t*, const std::int64_t*, std::size_t, std::size_t, int,
                           std::int64_t*, float*);
extern "C" void* new_make(std::size_t, std::size_t, const std::int64_t*, const std::uint32_t*, const std::uint32_t*,
                          const float*, const float*);
extern "C" void new_search(void*, const std::uint32_t*, const std::int64_t*, std::size_t, std::size_t, int,
                           std::int64_t*, float*);

template <class T>
std::vector<T> load(const std::string& path) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    const auto n = static_cast<std::size_t>(f.tellg());
    std::vector<T> v(n / sizeof(T));
    f.seekg(0);
    f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n));
    return v;
}

double cpu() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
    const int rounds = argc > 1 ? std::atoi(argv[1]) : 21;
    const char* names[] = {"scifact", "zipf100k"};
    const char* strat[] = {"exhaustive", "pruned", "auto"};
    std::printf("case | old ms (min / median) | new ms (min / median) | new/old min | new/old median | old A/A min\n");
    for (const char* name : names) {
        if (argc > 2 && std::strcmp(argv[2], name) != 0) continue;
        const std::string b = std::string("/tmp/ab/") + name;
        auto tp = load<std::int64_t>(b + ".term_ptr");
        auto docs = load<std::uint32_t>(b + ".docs");
        auto tfs = load<std::uint32_t>(b + ".tfs");
        auto imp = load<float>(b + ".impacts");
        auto non = load<float>(b + ".nonocc");
        auto qt = load<std::uint32_t>(b + ".qt");
        auto qo = load<std::int64_t>(b + ".qo");
        std::size_t n_docs = std::stoul(std::string(std::istreambuf_iterator<char>(*new std::ifstream(b + ".n_docs")), {}));
        const std::size_t n_terms = tp.size() - 1, nq = qo.size() - 1;
        void* o = old_make(n_docs, n_terms, tp.data(), docs.data(), tfs.data(), imp.data(), non.data());
        void* n = new_make(n_docs, n_terms, tp.data(), docs.data(), tfs.data(), imp.data(), non.data());
        const std::size_t ks[2] = {10, std::string(name) == "scifact" ? 100u : 1000u};
        for (int s = 0; s < 3; ++s) {
            if (argc > 3 && std::atoi(argv[3]) != s) continue;
            for (std::size_t k : ks) {
                std::vector<std::int64_t> d0(nq * k), d1(nq * k);
                std::vector<float> s0(nq * k), s1(nq * k);
                old_search(o, qt.data(), qo.data(), nq, k, s, d0.data(), s0.data());
                new_search(n, qt.data(), qo.data(), nq, k, s, d1.data(), s1.data());
                const bool same = d0 == d1 && std::memcmp(s0.data(), s1.data(), s0.size() * 4) == 0;
                std::vector<double> to, tn;
                for (int r = 0; r < rounds; ++r) {
                    for (int h = 0; h < 2; ++h) {
                        const bool old_now = (h == 0) == (r % 2 == 0);
                        const double t0 = cpu();
                        if (old_now)
                            old_search(o, qt.data(), qo.data(), nq, k, s, d0.data(), s0.data());
                        else
                            new_search(n, qt.data(), qo.data(), nq, k, s, d1.data(), s1.data());
                        (old_now ? to : tn).push_back(cpu() - t0);
                    }
                }
                auto mn = [](std::vector<double> v, std::size_t a, std::size_t e) {
                    return *std::min_element(v.begin() + a, v.begin() + e);
                };
                auto med = [](std::vector<double> v) {
                    std::sort(v.begin(), v.end());
                    return v[v.size() / 2];
                };
                const double mo = mn(to, 0, to.size()), mnw = mn(tn, 0, tn.size());
                const double aa = mn(to, 0, to.size() / 2) / mn(to, to.size() / 2, to.size());
                std::printf("%s %s k=%zu%s | %.2f / %.2f | %.2f / %.2f | %.3f | %.3f | %.3f\n", name, strat[s], k,
                            same ? "" : " (RESULTS DIFFER)", mo * 1e3, med(to) * 1e3, mnw * 1e3, med(tn) * 1e3,
                            mnw / mo, med(tn) / med(to), aa);
                std::fflush(stdout);
            }
        }
    }
}
