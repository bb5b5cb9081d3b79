// Run-time loading of NCCL; see nccl_loader.h for the search order.
#include "nccl_loader.h"

#include <dlfcn.h>
#include <glob.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>

#include "error.h"

namespace llmk::nccl {
namespace {

bool is_file(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> glob_all(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g;
  std::memset(&g, 0, sizeof g);
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; i++) out.emplace_back(g.gl_pathv[i]);
  }
  ::globfree(&g);
  return out;
}

// site-packages folders that python3 reports (one per line); empty when there is no python3.
std::vector<std::string> python_site_dirs() {
  std::vector<std::string> dirs;
  const char* off = std::getenv("LLMK_NCCL_NO_PYTHON");
  if (off && *off && std::strcmp(off, "0") != 0) return dirs;
  const char* cmd =
      "python3 -c \"import site,sys; d=site.getsitepackages()+[site.getusersitepackages()]; "
      "print(chr(10).join(d))\" 2>/dev/null";
  FILE* f = ::popen(cmd, "r");
  if (!f) return dirs;
  char line[4096];
  while (std::fgets(line, sizeof line, f)) {
    std::string s(line);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    if (!s.empty()) dirs.push_back(s);
  }
  ::pclose(f);
  return dirs;
}

const char* kWheelSubdirs[] = {"nvidia/nccl/lib", "nvidia/cu13/lib", "nvidia/cu12/lib"};

struct Sym {
  const char* name;
  void** slot;
};

std::string dl_error() {
  const char* e = ::dlerror();
  return e ? e : "unknown dlopen error";
}

}  // namespace

std::string version_string(int code) {
  int major = code / 10000, minor = (code % 10000) / 100, patch = code % 100;
  if (code < 10000) {  // pre-2.9 encoding: X*1000 + Y*100 + Z
    major = code / 1000;
    minor = (code % 1000) / 100;
    patch = code % 100;
  }
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

std::vector<std::string> candidates() {
  std::vector<std::string> out;
  const char* env = std::getenv("LLMK_NCCL_PATH");
  if (env && *env) {
    std::string p(env);
    out.push_back(is_dir(p) ? p + "/libnccl.so.2" : p);
    return out;
  }
  out.push_back("libnccl.so.2");
  std::vector<std::string> sites = python_site_dirs();
  auto add_glob = [&](const std::string& pattern) {
    for (auto& d : glob_all(pattern)) sites.push_back(d);
  };
  if (const char* v = std::getenv("VIRTUAL_ENV")) add_glob(std::string(v) + "/lib/python3*/site-packages");
  if (const char* c = std::getenv("CONDA_PREFIX")) {
    add_glob(std::string(c) + "/lib/python3*/site-packages");
    if (is_file(std::string(c) + "/lib/libnccl.so.2")) out.push_back(std::string(c) + "/lib/libnccl.so.2");
  }
  add_glob("/usr/local/lib/python3*/site-packages");
  add_glob("/usr/local/lib/python3*/dist-packages");
  add_glob("/usr/lib/python3*/site-packages");
  add_glob("/usr/lib/python3/dist-packages");
  if (const char* h = std::getenv("HOME")) add_glob(std::string(h) + "/.local/lib/python3*/site-packages");
  std::set<std::string> seen(out.begin(), out.end());
  for (auto& s : sites) {
    for (const char* sub : kWheelSubdirs) {
      std::string p = s + "/" + sub + "/libnccl.so.2";
      if (seen.count(p) || !is_file(p)) continue;
      seen.insert(p);
      out.push_back(p);
    }
  }
  return out;
}

LoadInfo load(const std::vector<std::string>& cands, Api* api) {
  LoadInfo info;
  Api a;
  const Sym syms[] = {
      {"ncclGetVersion", reinterpret_cast<void**>(&a.GetVersion)},
      {"ncclGetUniqueId", reinterpret_cast<void**>(&a.GetUniqueId)},
      {"ncclCommInitRank", reinterpret_cast<void**>(&a.CommInitRank)},
      {"ncclCommFinalize", reinterpret_cast<void**>(&a.CommFinalize)},
      {"ncclCommDestroy", reinterpret_cast<void**>(&a.CommDestroy)},
      {"ncclCommAbort", reinterpret_cast<void**>(&a.CommAbort)},
      {"ncclCommGetAsyncError", reinterpret_cast<void**>(&a.CommGetAsyncError)},
      {"ncclCommCount", reinterpret_cast<void**>(&a.CommCount)},
      {"ncclCommUserRank", reinterpret_cast<void**>(&a.CommUserRank)},
      {"ncclGetErrorString", reinterpret_cast<void**>(&a.GetErrorString)},
      {"ncclGetLastError", reinterpret_cast<void**>(&a.GetLastError)},
      {"ncclAllReduce", reinterpret_cast<void**>(&a.AllReduce)},
      {"ncclAllGather", reinterpret_cast<void**>(&a.AllGather)},
      {"ncclReduceScatter", reinterpret_cast<void**>(&a.ReduceScatter)},
      {"ncclBroadcast", reinterpret_cast<void**>(&a.Broadcast)},
      {"ncclSend", reinterpret_cast<void**>(&a.Send)},
      {"ncclRecv", reinterpret_cast<void**>(&a.Recv)},
      {"ncclGroupStart", reinterpret_cast<void**>(&a.GroupStart)},
      {"ncclGroupEnd", reinterpret_cast<void**>(&a.GroupEnd)},
  };
  std::string last_reason;
  for (const auto& path : cands) {
    info.path = path;
    ::dlerror();
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const std::string why = dl_error();
      last_reason = "cannot open " + path + ": " + why;
      info.searched.push_back(path + " (not loadable: " + why + ")");
      continue;
    }
    std::string missing;
    for (const auto& s : syms) {
      ::dlerror();
      *s.slot = ::dlsym(h, s.name);
      if (!*s.slot) missing += (missing.empty() ? "" : ", ") + std::string(s.name);
    }
    if (!missing.empty()) {
      last_reason = path + " is missing NCCL symbol(s): " + missing +
                    " (not NCCL, or an NCCL older than 2.18)";
      info.searched.push_back(path + " (missing " + missing + ")");
      ::dlclose(h);
      continue;
    }
    int v = 0;
    int r = a.GetVersion(&v);
    if (r != 0) {
      last_reason = path + ": ncclGetVersion failed with " + std::string(result_name(r));
      info.searched.push_back(path + " (ncclGetVersion failed)");
      ::dlclose(h);
      continue;
    }
    info.version = v;
    info.version_str = version_string(v);
    if (v < LLMK_NCCL_MIN_VERSION) {
      last_reason = path + " is NCCL " + info.version_str + "; llm-kernels needs NCCL 2.18 or newer";
      info.searched.push_back(path + " (NCCL " + info.version_str + ", too old)");
      ::dlclose(h);
      continue;
    }
    info.searched.push_back(path + " (loaded, NCCL " + info.version_str + ")");
    info.ok = true;
    info.error.clear();
    if (api) *api = a;
    return info;  // the handle stays open for the life of the process
  }
  info.ok = false;
  if (cands.empty()) {
    info.error = "NCCL is unavailable: no candidate library to try";
  } else {
    std::string where;
    for (const auto& s : info.searched) where += (where.empty() ? "" : "; ") + s;
    info.error = "NCCL is unavailable: " + last_reason + ". Searched: " + where +
                 ". Set LLMK_NCCL_PATH to libnccl.so.2 (2.18 or newer), or install the nvidia-nccl-cu12 wheel.";
  }
  return info;
}

namespace {
std::once_flag g_once;
LoadInfo g_info;
Api g_api;
}  // namespace

const LoadInfo& info() {
  std::call_once(g_once, [] { g_info = load(candidates(), &g_api); });
  return g_info;
}

const Api& api() {
  const LoadInfo& i = info();
  if (!i.ok) throw Error(ErrCode::Unavailable, i.error);
  return g_api;
}

const char* result_name(int r) {
  switch (r) {
    case 0: return "ncclSuccess";
    case 1: return "ncclUnhandledCudaError";
    case 2: return "ncclSystemError";
    case 3: return "ncclInternalError";
    case 4: return "ncclInvalidArgument";
    case 5: return "ncclInvalidUsage";
    case 6: return "ncclRemoteError";
    case 7: return "ncclInProgress";
    case 8: return "ncclTimeout";
  }
  return "ncclUnknownError";
}

void check(int r, const char* what, ncclComm_t comm) {
  if (r == 0) return;
  std::string msg = std::string(what) + " failed: " + result_name(r);
  if (g_api.GetErrorString) {
    const char* s = g_api.GetErrorString(static_cast<ncclResult_t>(r));
    if (s && *s) msg += std::string(" (") + s + ")";
  }
  if (comm && g_api.GetLastError) {
    const char* s = g_api.GetLastError(comm);
    if (s && *s) msg += std::string(": ") + s;
  }
  throw Error(ErrCode::Nccl, msg, result_name(r));
}

}  // namespace llmk::nccl
