// The write-ahead log's files and records; the format is described in write_ahead_log.h.
#include "write_ahead_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace waymark::edge {
namespace {

constexpr std::size_t kHeaderBytes = 8;
// A file grows in steps of zeros this big, so that a record written into space the file already
// has changes no file size and fdatasync has only the data to flush.
constexpr std::uint64_t kGrowthBytes = std::uint64_t{1} << 20;
constexpr mode_t kFileMode = 0600;  // the log holds tenants' messages

Error wal_error(const std::string& what) {
  return make_error(ErrorCode::unavailable, "wal: " + what + ": " + std::strerror(errno));
}

std::string file_name(const std::string& dir, int index) {
  return dir + "/wal-" + std::to_string(index);
}

void put_u32(std::string& out, std::uint32_t value) {
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<char>((value >> shift) & 0xff));
}
void put_u64(std::string& out, std::uint64_t value) {
  for (int shift = 0; shift < 64; shift += 8) out.push_back(static_cast<char>((value >> shift) & 0xff));
}

std::uint32_t crc_of(std::string_view bytes) {
  return static_cast<std::uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

// Reads little-endian fields from a payload; `ok` turns false past its end.
struct Reader {
  std::string_view bytes;
  std::size_t at = 0;
  bool ok = true;

  std::uint64_t uint(int width) {
    if (bytes.size() - at < static_cast<std::size_t>(width)) {
      ok = false;
      return 0;
    }
    std::uint64_t value = 0;
    for (int i = 0; i < width; ++i)
      value |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
    at += static_cast<std::size_t>(width);
    return value;
  }
  std::string text() {
    std::uint64_t size = uint(4);
    if (!ok || bytes.size() - at < size) {
      ok = false;
      return {};
    }
    std::string out(bytes.substr(at, size));
    at += size;
    return out;
  }
};

std::optional<WalBatch> decode(std::string_view payload) {
  Reader r{payload};
  WalBatch batch;
  batch.number = r.uint(8);
  std::uint64_t count = r.uint(4);
  for (std::uint64_t i = 0; r.ok && i < count; ++i) {
    WalChange change;
    change.db = static_cast<std::uint8_t>(r.uint(1));
    std::uint64_t kind = r.uint(1);
    change.key = r.text();
    if (kind == 1) change.value = r.text();
    batch.changes.push_back(std::move(change));
  }
  if (!r.ok || r.at != payload.size()) return std::nullopt;
  return batch;
}

bool read_fully(int fd, char* out, std::size_t size, std::uint64_t offset) {
  while (size > 0) {
    ssize_t n = ::pread(fd, out, size, static_cast<off_t>(offset));
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    out += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return true;
}

bool write_fully(int fd, const char* data, std::size_t size, std::uint64_t offset) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return true;
}

// The records of one file from its start, while they are intact and numbered one after another.
Result<std::vector<WalBatch>> read_file(const std::string& path) {
  std::vector<WalBatch> batches;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return batches;
    return wal_error("open " + path);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Error error = wal_error("fstat " + path);
    ::close(fd);
    return error;
  }
  const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
  std::uint64_t offset = 0;
  std::string payload;
  while (size - offset >= kHeaderBytes) {
    char header[kHeaderBytes];
    if (!read_fully(fd, header, kHeaderBytes, offset)) break;
    Reader h{std::string_view(header, kHeaderBytes)};
    std::uint64_t length = h.uint(4);
    std::uint32_t crc = static_cast<std::uint32_t>(h.uint(4));
    if (length == 0 || length > size - offset - kHeaderBytes) break;
    payload.resize(length);
    if (!read_fully(fd, payload.data(), length, offset + kHeaderBytes)) break;
    if (crc_of(payload) != crc) break;
    std::optional<WalBatch> batch = decode(payload);
    if (!batch) break;
    if (!batches.empty() && batch->number != batches.back().number + 1) break;
    batches.push_back(std::move(*batch));
    offset += kHeaderBytes + length;
  }
  ::close(fd);
  return batches;
}

}  // namespace

Result<std::unique_ptr<WriteAheadLog>> WriteAheadLog::Open(const std::string& dir) {
  int fds[2] = {-1, -1};
  bool created = false;
  for (int i = 0; i < 2; ++i) {
    std::string path = file_name(dir, i);
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kFileMode);
      created = true;
    }
    if (fd < 0) {
      Error error = wal_error("open " + path);
      if (i == 1) ::close(fds[0]);
      return error;
    }
    fds[i] = fd;
  }
  std::unique_ptr<WriteAheadLog> log(new WriteAheadLog(fds[0], fds[1]));
  for (int i = 0; i < 2; ++i) {
    struct stat st {};
    if (::fstat(fds[i], &st) != 0) return wal_error("fstat " + file_name(dir, i));
    log->allocated_[i] = static_cast<std::uint64_t>(st.st_size);
  }
  if (created) {  // a new file's name must survive a crash as surely as what it will hold
    int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return wal_error("open " + dir);
    int rc = ::fsync(dir_fd);
    ::close(dir_fd);
    if (rc != 0) return wal_error("fsync " + dir);
  }
  return log;
}

WriteAheadLog::~WriteAheadLog() {
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

Result<std::vector<WalBatch>> WriteAheadLog::read(const std::string& dir, std::uint64_t applied) {
  std::vector<WalBatch> all;
  for (int i = 0; i < 2; ++i) {
    auto batches = read_file(file_name(dir, i));
    if (!batches.ok()) return batches.error();
    for (auto& batch : batches.value())
      if (batch.number > applied) all.push_back(std::move(batch));
  }
  std::sort(all.begin(), all.end(), [](const WalBatch& a, const WalBatch& b) { return a.number < b.number; });
  std::vector<WalBatch> out;
  for (auto& batch : all) {
    if (batch.number != applied + 1 + out.size()) break;
    out.push_back(std::move(batch));
  }
  return out;
}

Status WriteAheadLog::append(std::uint64_t number, const std::vector<WalChange>& changes) {
  if (failed_) return *failed_;
  std::string& r = record_;
  r.assign(kHeaderBytes, '\0');
  put_u64(r, number);
  put_u32(r, static_cast<std::uint32_t>(changes.size()));
  for (const WalChange& change : changes) {
    r.push_back(static_cast<char>(change.db));
    r.push_back(change.value ? 1 : 0);
    put_u32(r, static_cast<std::uint32_t>(change.key.size()));
    r.append(change.key);
    if (change.value) {
      put_u32(r, static_cast<std::uint32_t>(change.value->size()));
      r.append(*change.value);
    }
  }
  std::string header;
  put_u32(header, static_cast<std::uint32_t>(r.size() - kHeaderBytes));
  put_u32(header, crc_of(std::string_view(r).substr(kHeaderBytes)));
  std::memcpy(r.data(), header.data(), kHeaderBytes);

  const int fd = fds_[active_];
  const std::uint64_t end = offset_ + r.size();
  if (end > allocated_[active_]) {
    std::uint64_t grown = (end + kGrowthBytes - 1) / kGrowthBytes * kGrowthBytes;
    std::string zeros(grown - allocated_[active_], '\0');
    if (!write_fully(fd, zeros.data(), zeros.size(), allocated_[active_])) {
      failed_ = wal_error("write");
      return *failed_;
    }
    allocated_[active_] = grown;
  }
  if (!write_fully(fd, r.data(), r.size(), offset_)) {
    failed_ = wal_error("write");
    return *failed_;
  }
  if (::fdatasync(fd) != 0) {
    failed_ = wal_error("fdatasync");
    return *failed_;
  }
  offset_ = end;
  return ok_status();
}

void WriteAheadLog::rotate() {
  active_ = 1 - active_;
  offset_ = 0;
}

}  // namespace waymark::edge
