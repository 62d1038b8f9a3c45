#include "models/checkpoint_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

namespace latentserve::models {

namespace {

constexpr uint64_t kHugePageBytes = uint64_t(2) << 20;

// Closes the descriptor on every path out of open().
struct FileDescriptor {
  int fd = -1;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

std::string errno_text() { return std::strerror(errno); }

std::string gib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", double(bytes) / double(uint64_t(1) << 30));
  return text;
}

// `bytes` rounded up to whole 2 MiB pages, in anonymous memory aligned to 2 MiB, so every page
// of it can be a huge one. madvise may fail (a kernel without transparent huge pages) or be
// ignored (THP set to "never"); the memory is then ordinary pages and just as correct.
Result<uint8_t*> allocate_huge_page_region(uint64_t bytes, const std::string& path) {
  const uint64_t reserve = bytes + 2 * kHugePageBytes;  // rounding up, plus room to align
  if (bytes > std::numeric_limits<size_t>::max() - 2 * kHugePageBytes) {
    return make_error(path + ": " + std::to_string(bytes) + " bytes are too many to copy into memory");
  }
  void* p = ::mmap(nullptr, size_t(reserve), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return make_error(path + ": cannot allocate " + gib(bytes) + " to copy the file into (" + errno_text() +
                      "); loading with mmap needs no copy");
  }
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = (start + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  const uint64_t rounded = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  if (aligned > start) ::munmap(p, aligned - start);
  const uintptr_t end = start + reserve;
  if (end > aligned + rounded) ::munmap(reinterpret_cast<void*>(aligned + rounded), end - (aligned + rounded));
  auto* region = reinterpret_cast<uint8_t*>(aligned);
  (void)::madvise(region, size_t(rounded), MADV_HUGEPAGE);
  return region;
}

Status read_fully(int fd, uint8_t* out, uint64_t size, const std::string& path) {
  constexpr uint64_t kChunk = uint64_t(1) << 30;  // pread moves at most ~2 GiB per call
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, out + done, size_t(std::min(kChunk, size - done)), off_t(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error(path + ": read failed at byte " + std::to_string(done) + " (" + errno_text() + ")");
    if (n == 0) {
      return make_error(path + ": read only " + std::to_string(done) + " of " + std::to_string(size) +
                        " bytes (the file shrank while loading)");
    }
    done += uint64_t(n);
  }
  return ok_status();
}

}  // namespace

const char* weight_load_name(WeightLoad load) { return load == WeightLoad::kCopy ? "copy" : "mmap"; }

Result<std::unique_ptr<CheckpointFile>> CheckpointFile::open(const std::string& path, WeightLoad load) {
  FileDescriptor fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) return make_error(path + ": cannot open (" + errno_text() + ")");
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0 || !S_ISREG(st.st_mode)) return make_error(path + ": not a regular file");
  auto file = std::unique_ptr<CheckpointFile>(new CheckpointFile());
  file->size_ = uint64_t(st.st_size);
  if (file->size_ == 0) return file;
  if (load == WeightLoad::kMmap) {
    void* p = ::mmap(nullptr, size_t(file->size_), PROT_READ, MAP_PRIVATE, fd.fd, 0);
    if (p == MAP_FAILED) return make_error(path + ": mmap failed (" + errno_text() + ")");
    file->data_ = static_cast<const uint8_t*>(p);
    file->mapped_bytes_ = size_t(file->size_);
    return file;
  }
  LS_ASSIGN_OR_RETURN(uint8_t* region, allocate_huge_page_region(file->size_, path));
  file->data_ = region;
  file->mapped_bytes_ = size_t((file->size_ + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes);
  LS_RETURN_IF_ERROR(read_fully(fd.fd, region, file->size_, path));
  // Read-only from here, as the mapping is: a stray write is a fault, not a changed weight.
  (void)::mprotect(region, file->mapped_bytes_, PROT_READ);
  return file;
}

CheckpointFile::~CheckpointFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), mapped_bytes_);
}

}  // namespace latentserve::models
