// jitalloc::orc::MemoryManager: JITLink graphs in jitalloc (see include/jitalloc/orc.hpp).
//
// One graph's life:
//   allocate  BasicLayout groups the graph's sections into segments by protection and
//             lifetime. Each executable segment gets an allocation of the graph's batch
//             (jit_batch_alloc: a final address, trap-filled, not live yet) and a slice of
//             one zeroed heap buffer as working memory; each read-only segment a range of
//             the R heap and a slice of the buffer; each read-write segment a zeroed range
//             of the RW heap, which is its own working memory. JITLink then copies and
//             fixes up the graph at the final addresses.
//   finalize  every executable segment is staged in the batch and the batch committed:
//             one kernel write per run of adjacent segments, no cross-CPU serialisation
//             (fresh code), the code live only from here; every R segment copied in
//             (data_heap.h); then the finalize actions run; the finalize-lifetime segments
//             are freed, and the record of what is left plus the dealloc actions becomes
//             the FinalizedAlloc (its address is the record).
//   deallocate  dealloc actions (last allocation first), then every segment freed.
//   abandon / a failed finalize  every segment freed (code not yet committed: given back
//             by aborting the batch), no action run.
// The record (GraphMemory) belongs to exactly one of: the allocate call, an InFlight,
// a FinalizedAlloc. Shared state is the arena and the heaps, each thread safe.
#include <jitalloc/orc.hpp>

#include "data_heap.h"

#include <llvm/ExecutionEngine/JITLink/JITLink.h>
#include <llvm/ExecutionEngine/Orc/Shared/AllocationActions.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>

namespace jitalloc::orc {

namespace jl = llvm::jitlink;
namespace lo = llvm::orc;

namespace {

enum class Home : uint8_t { Code, ReadOnly, ReadWrite };

struct Segment {
    lo::AllocGroup group;
    Home home = Home::Code;
    uint8_t *addr = nullptr;  // final address
    size_t size = 0;          // content + zero fill
    size_t reserved = 0;      // bytes asked of the arena or the heap
    void *code = nullptr;     // Code: the arena allocation holding the segment
    char *working = nullptr;  // where JITLink builds it (ReadWrite: addr itself)
};

struct BatchDeleter {
    void operator()(jit_batch *b) const { jit_batch_destroy(b); }
};

struct GraphMemory {
    llvm::SmallVector<Segment, 4> segments;
    std::vector<lo::shared::WrapperFunctionCall> dealloc_actions;
    // The code segments' batch until finalize commits it (then null: the code is live and
    // freed one allocation at a time). Destroying it gives uncommitted code back.
    std::unique_ptr<jit_batch, BatchDeleter> batch;
};

struct FreeDeleter {
    void operator()(char *p) const { std::free(p); }
};
using WorkingBuffer = std::unique_ptr<char, FreeDeleter>;

constexpr size_t kWorkingAlign = 16;

size_t align_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

llvm::Error errno_error(int err, const llvm::Twine &what) {
    return llvm::make_error<llvm::StringError>(what + ": " + std::strerror(err),
                                               std::error_code(err, std::generic_category()));
}

// The name perf and GDB show for an executable segment: its lowest-addressed named
// function symbol, else the graph's name.
std::string code_name(jl::LinkGraph &G, lo::AllocGroup AG) {
    const jl::Symbol *best = nullptr;
    for (jl::Section &Sec : G.sections()) {
        if (Sec.getMemProt() != AG.getMemProt() ||
            Sec.getMemDeallocPolicy() != AG.getMemDeallocPolicy())
            continue;
        for (const jl::Symbol *Sym : Sec.symbols())
            if (Sym->hasName() && Sym->isCallable() &&
                (!best || Sym->getAddress() < best->getAddress()))
                best = Sym;
    }
    return best ? best->getName().str() : G.getName();
}

}  // namespace

class MemoryManager::Impl {
public:
    explicit Impl(jit_arena *a)
        : arena(a), rw(a, detail::DataHeap::Access::ReadWrite),
          ro(a, detail::DataHeap::Access::ReadOnly) {}
    ~Impl() { jit_arena_destroy(arena); }

    // Takes memory for s (group, home and size set) for graph m; 0 or an errno.
    int reserve(GraphMemory &m, Segment &s, size_t align, const std::string &name) {
        s.reserved = s.size ? s.size : 1;
        if (s.home == Home::Code) {
            size_t pad = align > JIT_ALLOC_ALIGN ? align - JIT_ALLOC_ALIGN : 0;
            s.reserved += pad;
            if (!m.batch) {
                m.batch.reset(jit_batch_create(arena));
                if (!m.batch)
                    return errno;
            }
            s.code = jit_batch_alloc(m.batch.get(), nullptr, s.reserved, name.c_str());
            if (!s.code)
                return errno;
            s.addr = reinterpret_cast<uint8_t *>(align_up(reinterpret_cast<uintptr_t>(s.code), align));
            return 0;
        }
        return heap(s).alloc(s.reserved, align, &s.addr);
    }

    // 0 or the errno of a code free that failed (the allocation then stays live). Code
    // of a batch not yet committed is given back with the batch (release_all).
    int release(const GraphMemory &m, Segment &s) {
        if (s.home == Home::Code)
            return m.batch || jit_arena_free(arena, s.code) == 0 ? 0 : errno;
        heap(s).free(s.addr, s.reserved);
        return 0;
    }

    llvm::Error release_all(GraphMemory &m) {
        llvm::Error err = llvm::Error::success();
        for (Segment &s : m.segments)
            if (int rc = release(m, s))
                err = llvm::joinErrors(std::move(err),
                                       errno_error(rc, "jitalloc: cannot free JIT code"));
        m.segments.clear();
        m.batch.reset();
        graphs.fetch_sub(1, std::memory_order_relaxed);
        return err;
    }

    // Writes the graph's working memory to its final places: the code segments in one
    // batch commit (all or none), the R segments copied in (nothing to do for RW). 0 or
    // an errno (then no code segment is live, see release).
    int publish(GraphMemory &m) {
        for (const Segment &s : m.segments)
            if (s.home == Home::Code && s.size &&
                jit_batch_update(m.batch.get(), s.addr, s.working, s.size) != 0)
                return errno;
        if (m.batch) {
            if (jit_batch_commit(m.batch.get()) != 0)
                return errno;  // the batch gave the code back: nothing to free
            m.batch.reset();
        }
        for (const Segment &s : m.segments)
            if (s.home == Home::ReadOnly && s.size)
                if (int rc = ro.write(s.addr, s.working, s.size))
                    return rc;
        return 0;
    }

    detail::DataHeap &heap(const Segment &s) { return s.home == Home::ReadOnly ? ro : rw; }

    jit_arena *const arena;
    detail::DataHeap rw, ro;
    std::atomic<uint64_t> graphs{0}, total_graphs{0};
};

namespace {

class InFlight final : public jl::JITLinkMemoryManager::InFlightAlloc {
public:
    InFlight(MemoryManager::Impl &impl, jl::LinkGraph &G, std::unique_ptr<GraphMemory> mem,
             WorkingBuffer working)
        : impl_(impl), G_(G), mem_(std::move(mem)), working_(std::move(working)) {}

    // Neither finalized nor abandoned (JITLink always does one of them): free anyway.
    ~InFlight() override {
        if (mem_)
            llvm::consumeError(impl_.release_all(*mem_));
    }

    void finalize(OnFinalizedFunction OnFinalized) override {
        if (int rc = impl_.publish(*mem_)) {
            OnFinalized(fail(errno_error(rc, "jitalloc: cannot write the segments of graph " +
                                                 G_.getName())));
            return;
        }
        auto dealloc_actions = lo::shared::runFinalizeActions(G_.allocActions());
        if (!dealloc_actions) {
            OnFinalized(fail(dealloc_actions.takeError()));
            return;
        }
        // Finalize-lifetime segments are done with. One whose free fails stays in the
        // record and is freed again with the rest at deallocate.
        auto &segs = mem_->segments;
        segs.erase(std::remove_if(segs.begin(), segs.end(),
                                  [&](Segment &s) {
                                      return s.group.getMemDeallocPolicy() ==
                                                 lo::MemDeallocPolicy::Finalize &&
                                             impl_.release(*mem_, s) == 0;
                                  }),
                   segs.end());
        working_.reset();
        mem_->dealloc_actions = std::move(*dealloc_actions);
        OnFinalized(jl::JITLinkMemoryManager::FinalizedAlloc(lo::ExecutorAddr::fromPtr(mem_.release())));
    }

    void abandon(OnAbandonedFunction OnAbandoned) override {
        llvm::Error err = impl_.release_all(*mem_);
        mem_.reset();
        OnAbandoned(std::move(err));
    }

private:
    llvm::Error fail(llvm::Error why) {
        llvm::Error err = llvm::joinErrors(std::move(why), impl_.release_all(*mem_));
        mem_.reset();
        return err;
    }

    MemoryManager::Impl &impl_;
    jl::LinkGraph &G_;
    std::unique_ptr<GraphMemory> mem_;
    WorkingBuffer working_;
};

bool has(lo::MemProt prot, lo::MemProt bit) {
    return (static_cast<unsigned>(prot) & static_cast<unsigned>(bit)) != 0;
}

Home home_of(lo::MemProt prot) {
    if (has(prot, lo::MemProt::Exec))
        return Home::Code;
    if (has(prot, lo::MemProt::Write))
        return Home::ReadWrite;
    return Home::ReadOnly;
}

}  // namespace

llvm::Expected<std::unique_ptr<MemoryManager>> MemoryManager::Create(const Options &options) {
    jit_arena_options o;
    jit_arena_options_init(&o);
    o.writer = static_cast<jit_writer>(options.writer);
    o.placement = JIT_PLACE_NEAR_ADDRESS;
    o.near = options.near ? options.near : reinterpret_cast<const void *>(&jit_arena_create);
    o.near_range = kWindow;
    o.retain_bytes = options.retain_bytes;
    o.max_bytes = options.max_code_bytes;
    o.flags = options.arena_flags | JIT_ARENA_NO_SYNC_CORE;
    o.name = options.name;
    jit_arena *a = jit_arena_create(&o);
    if (!a)
        return errno_error(errno, "jitalloc: cannot create the code arena");
    return std::unique_ptr<MemoryManager>(new MemoryManager(std::make_unique<Impl>(a)));
}

MemoryManager::MemoryManager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MemoryManager::~MemoryManager() = default;

void MemoryManager::allocate(const jl::JITLinkDylib *, jl::LinkGraph &G,
                             OnAllocatedFunction OnAllocated) {
    jl::BasicLayout BL(G);
    auto mem = std::make_unique<GraphMemory>();
    size_t working_bytes = 0;
    for (auto &[AG, Seg] : BL.segments()) {
        Segment s;
        s.group = AG;
        s.home = home_of(AG.getMemProt());
        s.size = Seg.ContentSize + Seg.ZeroFillSize;
        if (s.home == Home::Code && has(AG.getMemProt(), lo::MemProt::Write)) {
            OnAllocated(errno_error(EINVAL, "jitalloc: graph " + G.getName() +
                                                " asks for writable and executable memory"));
            return;
        }
        if (s.home != Home::ReadWrite)
            working_bytes += align_up(s.size, kWorkingAlign);
        mem->segments.push_back(s);
    }
    WorkingBuffer working(static_cast<char *>(std::calloc(working_bytes ? working_bytes : 1, 1)));
    if (!working) {
        OnAllocated(errno_error(ENOMEM, "jitalloc: no working memory for graph " + G.getName()));
        return;
    }
    impl_->graphs.fetch_add(1, std::memory_order_relaxed);
    impl_->total_graphs.fetch_add(1, std::memory_order_relaxed);
    size_t offset = 0;
    unsigned i = 0;
    for (auto &[AG, Seg] : BL.segments()) {
        Segment &s = mem->segments[i++];
        std::string name = s.home == Home::Code ? code_name(G, AG) : std::string();
        if (int rc = impl_->reserve(*mem, s, Seg.Alignment.value(), name)) {
            llvm::Error why = errno_error(rc, "jitalloc: cannot allocate " +
                                                  llvm::Twine(s.reserved) + " bytes for graph " +
                                                  G.getName());
            mem->segments.pop_back_n(mem->segments.size() - (i - 1));  // s and later: nothing held
            OnAllocated(llvm::joinErrors(std::move(why), impl_->release_all(*mem)));
            return;
        }
        if (s.home == Home::ReadWrite) {
            s.working = reinterpret_cast<char *>(s.addr);
        } else {
            s.working = working.get() + offset;
            offset += align_up(s.size, kWorkingAlign);
        }
        Seg.Addr = lo::ExecutorAddr::fromPtr(s.addr);
        Seg.WorkingMem = s.working;
    }
    if (llvm::Error err = BL.apply()) {
        OnAllocated(llvm::joinErrors(std::move(err), impl_->release_all(*mem)));
        return;
    }
    OnAllocated(std::make_unique<InFlight>(*impl_, G, std::move(mem), std::move(working)));
}

void MemoryManager::deallocate(std::vector<FinalizedAlloc> Allocs,
                               OnDeallocatedFunction OnDeallocated) {
    llvm::Error err = llvm::Error::success();
    for (auto it = Allocs.rbegin(); it != Allocs.rend(); ++it) {
        if (!*it)
            continue;
        std::unique_ptr<GraphMemory> mem(it->release().toPtr<GraphMemory *>());
        err = llvm::joinErrors(std::move(err), lo::shared::runDeallocActions(mem->dealloc_actions));
        err = llvm::joinErrors(std::move(err), impl_->release_all(*mem));
    }
    OnDeallocated(std::move(err));
}

jit_arena *MemoryManager::arena() const { return impl_->arena; }

Stats MemoryManager::stats() const {
    Stats s;
    std::memset(&s.code, 0, sizeof s.code);
    jit_arena_stats(impl_->arena, &s.code);
    s.read_write = impl_->rw.stats();
    s.read_only = impl_->ro.stats();
    s.graphs = impl_->graphs.load(std::memory_order_relaxed);
    s.total_graphs = impl_->total_graphs.load(std::memory_order_relaxed);
    return s;
}

size_t MemoryManager::shrink() {
    return jit_arena_shrink(impl_->arena) + impl_->rw.shrink() + impl_->ro.shrink();
}

}  // namespace jitalloc::orc
