#!/usr/bin/python3
"""What waymark_core.wasm is made of: its sections' bytes, and its functions' code bytes summed by
whose code they are (first matching rule by demangled name). Needs a module linked with
--profiling-funcs (names kept; the code is the same as without), docs/benchmarks.md says how.

usage: wasm_size_breakdown.py MODULE.wasm [CATEGORY [N]]   (CATEGORY: list its N largest)
"""
import collections, re, subprocess, sys

def leb(b, i):
    r = s = 0
    while True:
        x = b[i]; i += 1
        r |= (x & 0x7f) << s; s += 7
        if x < 0x80: return r, i

def main(path):
    b = open(path, 'rb').read()
    i = 8; sections = []; code = None; names = {}; nimports = 0
    while i < len(b):
        sid = b[i]; i += 1
        size, i = leb(b, i); start = i; end = i + size
        label = str(sid)
        if sid == 0:
            n, j = leb(b, i); label = 'custom:' + b[j:j+n].decode()
            if label == 'custom:name':
                j += n
                while j < end:
                    sub = b[j]; j += 1; ssz, j = leb(b, j); send = j + ssz
                    if sub == 1:
                        cnt, j = leb(b, j)
                        for _ in range(cnt):
                            idx, j = leb(b, j); ln, j = leb(b, j)
                            names[idx] = b[j:j+ln].decode(errors='replace'); j += ln
                    j = send
        elif sid == 2:
            cnt, j = leb(b, i)
            for _ in range(cnt):
                ln, j = leb(b, j); j += ln; ln, j = leb(b, j); j += ln
                kind = b[j]; j += 1
                if kind == 0: nimports += 1; _, j = leb(b, j)
                elif kind == 1: j += 1; fl, j = leb(b, j); _, j = leb(b, j); j = leb(b, j)[1] if fl & 1 else j
                elif kind == 2: fl, j = leb(b, j); _, j = leb(b, j); j = leb(b, j)[1] if fl & 1 else j
                elif kind == 3: j += 2
                elif kind == 4: j += 1; _, j = leb(b, j)
        elif sid == 10: code = (i, end)
        sections.append((label, size)); i = end
    labels = {0:'custom',1:'type',2:'import',3:'function',4:'table',5:'memory',6:'global',7:'export',8:'start',9:'elem',10:'code',11:'data',12:'datacount',13:'tag'}
    print('== sections (bytes)')
    for l, s in sections:
        print(f'{labels.get(int(l), l) if l.isdigit() else l:24} {s:8}')
    funcs = []
    cnt, j = leb(b, code[0])
    for k in range(cnt):
        sz, j2 = leb(b, j); funcs.append((names.get(nimports + k, f'f{nimports+k}'), sz + (j2 - j))); j = j2 + sz
    mangled = [n for n, _ in funcs]
    dem = subprocess.run(['c++filt'], input='\n'.join(mangled), capture_output=True, text=True).stdout.split('\n')
    out = [(dem[k] if k < len(dem) and dem[k] else mangled[k], s) for k, (_, s) in enumerate(funcs)]
    return out


rules = [
  ('Boost.JSON (and the Boost.System error codes it uses)', r'boost::json|boost::system|boost::container|boost::core|boost::throw'),
  ('embind', r'emscripten::|_embind_|EMSCRIPTEN_BINDINGS|embind|__getTypeName|InitFunc'),
  # wasm/bindings.cpp: its classes and the helpers in its anonymous namespace.
  ('bindings (wasm/bindings.cpp)', r'waymark::Wasm|FixedDraws|waymark::\(anonymous namespace\)::(error_json|plain_event_json|event_json|io_json|to_time|to_optional_seq|join_u32|config_with|optional_device|message_id_for|state_passed|valid_conv)\b'),
  ('core (names a waymark:: entity: its code and the std:: templates instantiated for it)', r'waymark::'),
  ('musl printf', r'printf|pop_arg|fmt_|strto|scanf|__floatscan|__intscan|frexp|fmt_fp|wcrtomb|out$|pad$|getint|__shgetc|__shlim|copysign|scalbn|fmodl?|__fpclassify|strtod'),
  ('emmalloc', r'emmalloc|^malloc|^free|^realloc|^sbrk|^calloc|aligned_alloc|memalign|^emscripten_builtin|claim_more_memory|attempt_allocate|create_memory_region|link_to_free_list|unlink_from_free_list|compute_free_list_bucket|emscripten_resize_heap'),
  ('libc++abi / rtti', r'__cxxabiv1|__cxa|type_info|std::exception|std::bad_|std::logic_error|std::runtime_error|std::length_error|std::out_of_range|std::invalid_argument|operator new|operator delete'),
  ('libc++ (std::, naming no waymark:: type)', r'std::__2::'),
  ('libc: memory, strings, compiler runtime', r'^mem|^str|^__mem|^__str|^wmem|^abort|^__lock|^__unlock|^dlmalloc|^__errno|^__stdio|^__towrite|^__fwrite|^fwrite|^__lockfile|^fputs|^__ofl|^__libc|^__wasm|^emscripten_|^stack|^_emscripten|^__lshrti3|^__ashlti3|^__multi3|^__udivti3|^__umodti3|^__divti3|^__trunc|^__extend|^__fix|^__float|^__addtf3|^__subtf3|^__multf3|^__divtf3|^__getf2|^__letf2|^__eqtf2|^__netf2|^__unordtf2|^__ltf2|^__gttf2|^__lttf2|^__unlock|^dummy|^isdigit|^__memcpy|^llround|^lround|^round|^ldexp|^__ldexp|^log|^pow|^exp'),
]

def report(path, show=None, count=40):
    funcs = main(path)
    total = collections.Counter()
    members = collections.defaultdict(list)
    for name, size in funcs:
        category = next((c for c, rx in rules if re.search(rx, name)), 'other')
        total[category] += size
        members[category].append((size, name))
    print(f'== code by owner ({sum(total.values())} bytes, {len(funcs)} functions)')
    for category, size in total.most_common():
        print(f'{category:68} {size:7} {len(members[category]):5}')
    if show:
        for size, name in sorted(members[show], reverse=True)[:count]:
            print(size, name[:180])


if __name__ == '__main__':
    report(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None,
           int(sys.argv[3]) if len(sys.argv) > 3 else 40)
