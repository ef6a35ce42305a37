// Runs the fuzz harness without libFuzzer, so every build (plain, ASan+UBSan, TSan)
// exercises it: replays corpus files and directories, then random inputs.
//
//   fuzz_replay [FILE|DIR]... [--random N] [--seed S] [--max-len L]
#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

namespace {

bool run_file(const std::string &path) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) {
        std::perror(path.c_str());
        return false;
    }
    std::vector<uint8_t> data;
    uint8_t buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
        data.insert(data.end(), buf, buf + n);
    std::fclose(f);
    LLVMFuzzerTestOneInput(data.data(), data.size());
    return true;
}

int run_path(const std::string &path) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        std::perror(path.c_str());
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path) ? 1 : -1;
    int count = 0;
    DIR *d = opendir(path.c_str());
    std::vector<std::string> names;
    while (dirent *e = readdir(d))
        if (e->d_name[0] != '.')
            names.push_back(path + "/" + e->d_name);
    closedir(d);
    for (const std::string &n : names) {
        int c = run_path(n);
        if (c < 0)
            return -1;
        count += c;
    }
    return count;
}

}  // namespace

int main(int argc, char **argv) {
    long random_runs = 0;
    unsigned long seed = 1;
    size_t max_len = 512;
    int files = 0;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--random" && i + 1 < argc) {
            random_runs = std::strtol(argv[++i], nullptr, 10);
        } else if (a == "--seed" && i + 1 < argc) {
            seed = std::strtoul(argv[++i], nullptr, 10);
        } else if (a == "--max-len" && i + 1 < argc) {
            max_len = std::strtoul(argv[++i], nullptr, 10);
        } else {
            int c = run_path(a);
            if (c < 0)
                return 2;
            files += c;
        }
    }
    std::mt19937_64 rng(seed);
    for (long r = 0; r < random_runs; r++) {
        std::vector<uint8_t> data(1 + rng() % max_len);
        for (uint8_t &b : data)
            b = static_cast<uint8_t>(rng());
        LLVMFuzzerTestOneInput(data.data(), data.size());
    }
    std::printf("fuzz_replay: %d corpus inputs, %ld random inputs (seed %lu): no mismatch\n", files,
                random_runs, seed);
    return 0;
}
