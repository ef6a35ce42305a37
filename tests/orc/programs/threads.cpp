// Threads running JIT code: std::thread workers summing ranges, a mutex-protected shared
// counter, atomics, a condition variable hand-off, thread_local (emulated TLS in LLVM 16's
// LLJIT), pthread_create with a JIT function as the start routine.
#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

namespace {

thread_local int tls_calls = 0;
std::mutex lock;
long shared_total = 0;
std::atomic<long> atomic_total{0};

long work(int id, int n) {
    long sum = 0;
    for (int i = 0; i < n; i++) {
        tls_calls++;
        sum += (long)i * id;
    }
    return sum;
}

void *pthread_entry(void *arg) {
    int *value = static_cast<int *>(arg);
    *value *= 3;
    tls_calls = 1000;  // this thread's copy only
    return nullptr;
}

}  // namespace

int main() {
    std::vector<std::thread> threads;
    std::vector<int> tls_seen(4);
    for (int t = 0; t < 4; t++)
        threads.emplace_back([t, &tls_seen] {
            long s = work(t + 1, 100000);
            tls_seen[t] = tls_calls;
            std::lock_guard<std::mutex> g(lock);
            shared_total += s;
            atomic_total.fetch_add(s);
        });
    for (auto &th : threads)
        th.join();
    std::printf("shared total %ld, atomic total %ld\n", shared_total, atomic_total.load());
    for (int t = 0; t < 4; t++)
        std::printf("thread %d saw %d thread-local calls\n", t, tls_seen[t]);
    std::printf("main thread-local calls %d\n", tls_calls);

    std::mutex m;
    std::condition_variable cv;
    int stage = 0;
    std::thread consumer([&] {
        std::unique_lock<std::mutex> g(m);
        cv.wait(g, [&] { return stage == 1; });
        stage = 2;
        cv.notify_all();
    });
    {
        std::unique_lock<std::mutex> g(m);
        stage = 1;
        cv.notify_all();
        cv.wait(g, [&] { return stage == 2; });
    }
    consumer.join();
    std::printf("condition variable hand-off reached stage %d\n", stage);

    int value = 14;
    pthread_t tid;
    pthread_create(&tid, nullptr, pthread_entry, &value);
    pthread_join(tid, nullptr);
    std::printf("pthread result %d, main thread-local still %d\n", value, tls_calls);
    return 0;
}
