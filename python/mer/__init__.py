"""mer: multimodal emotion recognition -- Python bindings over libmer.so (ctypes).

Numpy arrays go in and come out; every failing call raises MerError carrying the library's
status name and mer_last_error() (which names the file and the problem).

libmer.so is found, in order: $MER_LIB; the source tree this package sits in (../build/);
the system's loader path (an installed libmer.so.0, e.g. after `make install PREFIX=...` with
that prefix's lib/ on LD_LIBRARY_PATH).

    import mer
    ck = mer.Checkpoint("hubert-dir")            # safetensors or pytorch_model.bin
    w = ck["encoder.layers.0.attention.q_proj.weight"]
    sm = mer.SpeechModel("hubert-dir")
    hs = sm.hidden_states(mer.decode_audio("clip.wav"))   # (L + 1, T, D)
    faces = mer.Faces().detect("photo.png")
    run = mer.Run("runs/agt"); probs = run.predict({"audio": feats})
"""
import ctypes as C
import ctypes.util
import json
import os

import numpy as np

__all__ = ["MerError", "version", "lib", "data_path", "model_resolve", "convert", "decode_audio",
           "Checkpoint", "SpeechModel", "VisualModel", "Faces", "Run"]


class MerError(RuntimeError):
    """A failed mer call: .status (e.g. "MER_ERR_FORMAT") and the message of mer_last_error()."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def _load():
    cands = []
    if os.environ.get("MER_LIB"):
        cands.append(os.environ["MER_LIB"])
    here = os.path.dirname(os.path.abspath(__file__))
    cands.append(os.path.join(here, "libmer.so"))
    cands.append(os.path.join(here, "..", "..", "build", "libmer.so"))
    cands += ["libmer.so.0", ctypes.util.find_library("mer") or "libmer.so"]
    errs = []
    for c in cands:
        if os.sep in c and not os.path.exists(c):
            continue
        try:
            return C.CDLL(c)
        except OSError as e:
            errs.append(str(e))
    raise ImportError("mer: cannot load libmer.so (set MER_LIB, build it with `make`, or install it): "
                      + "; ".join(errs))


lib = _load()


class _Tensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int), ("ndim", C.c_int32),
                ("shape", C.c_int64 * 8), ("strides", C.c_int64 * 8)]


class _Entry(C.Structure):
    _fields_ = [("name", C.c_char_p), ("dtype", C.c_int), ("ndim", C.c_int32), ("shape", C.c_int64 * 8),
                ("data", C.c_void_p), ("nbytes", C.c_size_t), ("shard", C.c_int32)]


class _Image(C.Structure):
    _fields_ = [("width", C.c_int32), ("height", C.c_int32), ("rgb", C.POINTER(C.c_uint8)),
                ("time", C.c_double), ("index", C.c_int64)]


class _Face(C.Structure):
    _fields_ = [("x", C.c_float), ("y", C.c_float), ("width", C.c_float), ("height", C.c_float),
                ("score", C.c_float), ("expressions", C.c_float * 7), ("expression", C.c_int32)]


_F32P = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
_VP, _CP, _I32, _I64 = C.c_void_p, C.c_char_p, C.c_int32, C.c_int64


def _sig(name, restype, *args):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(args)
    return f


_sig("mer_last_error", _CP)
_sig("mer_status_str", _CP, C.c_int)
_sig("mer_data_path", C.c_int, _CP, C.POINTER(_VP))
_sig("mer_model_resolve", C.c_int, _CP, C.POINTER(_VP))
_sig("mer_checkpoint_convert", C.c_int, _CP, _CP, C.POINTER(_I64))
_sig("mer_media_decode_audio", C.c_int, _CP, _I32, C.POINTER(C.POINTER(C.c_float)), C.POINTER(_I64))
_sig("mer_safetensors_open", C.c_int, C.POINTER(_VP), _CP)
_sig("mer_safetensors_free", None, _VP)
_sig("mer_safetensors_count", _I64, _VP)
_sig("mer_safetensors_entry_at", C.c_int, _VP, _I64, C.POINTER(_Entry))
_sig("mer_safetensors_find", C.c_int, _VP, _CP, C.POINTER(_Entry))
_sig("mer_safetensors_format", _CP, _VP)
_sig("mer_speech_model_load", C.c_int, C.POINTER(_VP), _CP)
_sig("mer_speech_model_free", None, _VP)
_sig("mer_speech_frames", _I64, _VP, _I64)
_sig("mer_speech_state_init", C.c_int, C.POINTER(_VP), _VP)
_sig("mer_speech_state_free", None, _VP)
_sig("mer_speech_normalize", None, _F32P, _I64)
_sig("mer_speech_encode", C.c_int, _VP, _F32P, _I64, _I32, _I32, _F32P)
_sig("mer_clip_model_load", C.c_int, C.POINTER(_VP), _CP)
_sig("mer_clip_model_free", None, _VP)
_sig("mer_clip_output_size", _I64, _VP, C.c_int)
_sig("mer_clip_state_init", C.c_int, C.POINTER(_VP), _VP)
_sig("mer_clip_state_free", None, _VP)
_sig("mer_clip_forward", C.c_int, _VP, _F32P, _I32, C.c_int, _F32P)
_sig("mer_clip_encode_images", C.c_int, _VP, C.POINTER(_Image), _I32, C.c_int, _F32P)
_sig("mer_image_load", C.c_int, _CP, C.POINTER(_Image))
_sig("mer_image_free", None, C.POINTER(_Image))
_sig("mer_faces_load", C.c_int, C.POINTER(_VP), _CP)
_sig("mer_faces_free", None, _VP)
_sig("mer_faces_state_init", C.c_int, C.POINTER(_VP))
_sig("mer_faces_state_free", None, _VP)
_sig("mer_faces_detect", C.c_int, _VP, _VP, C.POINTER(_Image), _VP, C.POINTER(C.POINTER(_Face)),
     C.POINTER(_I32))
_sig("mer_face_expression_name", _CP, _I32)
_sig("mer_run_open", C.c_int, C.POINTER(_VP), _CP)
_sig("mer_run_free", None, _VP)
_sig("mer_run_n_classes", _I32, _VP)
_sig("mer_run_class", _CP, _VP, _I32)
_sig("mer_run_n_modalities", _I32, _VP)
_sig("mer_run_modality", _CP, _VP, _I32)
_sig("mer_run_dim", _I64, _VP, _I32)
_sig("mer_run_predict", C.c_int, _VP, _VP, _F32P)
_sig("mer_dataset_init", C.c_int, C.POINTER(_VP), C.POINTER(_CP), _I32, C.POINTER(_CP), _I32)
_sig("mer_dataset_add", C.c_int, _VP, _CP, _I32, _CP, C.c_int, C.POINTER(_Tensor))
_sig("mer_dataset_free", None, _VP)
_sig("mer_tensor_view", C.c_int, C.POINTER(_Tensor), _VP, C.c_int, _I32, C.POINTER(_I64))

_libc = C.CDLL(None)
_libc.free.argtypes = [_VP]
_libc.free.restype = None


def _check(status):
    if status != 0:
        raise MerError(lib.mer_status_str(status).decode(), (lib.mer_last_error() or b"").decode("utf-8", "replace"))


def _b(s):
    return os.fsencode(s) if not isinstance(s, bytes) else s


def _take_str(p):
    s = C.cast(p, C.c_char_p).value.decode()
    _libc.free(p)
    return s


__version__ = "0.1.0"


def version():
    """The package version; it matches MER_VERSION of the libmer.so it was written for."""
    return __version__


def data_path(rel):
    """Where a bundled item ("models/face-api", "data/emodb") is: $MER_DATA_DIR, the install's
    share/mer, or the source tree (mer_data_path)."""
    p = _VP()
    _check(lib.mer_data_path(_b(rel), C.byref(p)))
    return _take_str(p)


def model_resolve(spec):
    """A directory as given, or ORG/NAME from the Hugging Face cache (never downloads)."""
    p = _VP()
    _check(lib.mer_model_resolve(_b(spec), C.byref(p)))
    return _take_str(p)


def convert(model, out_dir):
    """PyTorch .bin (zip/legacy, sharded) or any checkpoint -> out_dir/model.safetensors.
    Returns the tensor count."""
    n = _I64()
    _check(lib.mer_checkpoint_convert(_b(model_resolve(model)), _b(out_dir), C.byref(n)))
    return n.value


def decode_audio(path, sample_rate=16000):
    """Mono float32 samples of any media file FFmpeg decodes, resampled to sample_rate."""
    p = C.POINTER(C.c_float)()
    n = _I64()
    _check(lib.mer_media_decode_audio(_b(path), sample_rate, C.byref(p), C.byref(n)))
    try:
        return np.ctypeslib.as_array(p, shape=(n.value,)).copy() if n.value else np.zeros(0, np.float32)
    finally:
        _libc.free(p)


_NP = {0: np.float32, 1: np.float16, 3: np.float64, 4: np.int32, 5: np.int64, 6: np.uint8, 7: np.int8,
       8: np.int16, 9: np.bool_}


class Checkpoint:
    """The tensors of a checkpoint: safetensors or PyTorch .bin (zip or legacy, sharded or not),
    a file or a directory. ck[name] is a numpy copy (BF16 comes back as float32)."""

    def __init__(self, path):
        self._h = _VP()
        _check(lib.mer_safetensors_open(C.byref(self._h), _b(path)))
        self.format = lib.mer_safetensors_format(self._h).decode()

    def close(self):
        if self._h:
            lib.mer_safetensors_free(self._h)
            self._h = _VP()

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def __len__(self):
        return lib.mer_safetensors_count(self._h)

    def names(self):
        out = []
        for i in range(len(self)):
            e = _Entry()
            _check(lib.mer_safetensors_entry_at(self._h, i, C.byref(e)))
            out.append(e.name.decode())
        return out

    def __getitem__(self, name):
        e = _Entry()
        _check(lib.mer_safetensors_find(self._h, _b(name), C.byref(e)))
        shape = tuple(e.shape[i] for i in range(e.ndim))
        raw = np.frombuffer(C.string_at(e.data, e.nbytes), dtype=np.uint8) if e.nbytes else np.zeros(0, np.uint8)
        if e.dtype == 2:  # bfloat16: the upper half of a float32
            return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
        return raw.view(_NP[e.dtype]).reshape(shape).copy()


class SpeechModel:
    """A HuBERT / wav2vec 2.0 checkpoint directory (or ORG/NAME in the Hugging Face cache)."""

    def __init__(self, model):
        self.dir = model_resolve(model)
        self._m, self._s = _VP(), _VP()
        _check(lib.mer_speech_model_load(C.byref(self._m), _b(self.dir)))
        _check(lib.mer_speech_state_init(C.byref(self._s), self._m))
        cfg = json.load(open(os.path.join(self.dir, "config.json")))
        self.n_layers, self.hidden_size = cfg["num_hidden_layers"], cfg["hidden_size"]
        pp = os.path.join(self.dir, "preprocessor_config.json")
        self.do_normalize = json.load(open(pp)).get("do_normalize", True) if os.path.exists(pp) else True

    def __del__(self):
        if getattr(self, "_s", None):
            lib.mer_speech_state_free(self._s)
        if getattr(self, "_m", None):
            lib.mer_speech_model_free(self._m)

    def hidden_states(self, samples, first=0, last=None, normalize=None):
        """Hidden states first..last (default all, 0 = encoder input): (K, T, D) float32, one pass,
        as transformers' output_hidden_states. The input is normalised when the checkpoint's
        do_normalize says so (or normalize=True)."""
        x = np.ascontiguousarray(samples, dtype=np.float32).copy()
        if normalize if normalize is not None else self.do_normalize:
            lib.mer_speech_normalize(x, x.size)
        last = self.n_layers if last is None else last
        T = lib.mer_speech_frames(self._m, x.size)
        out = np.zeros((last - first + 1, T, self.hidden_size), np.float32)
        _check(lib.mer_speech_encode(self._s, x, x.size, first, last, out))
        return out


class VisualModel:
    """A CLIP vision checkpoint directory (or ORG/NAME in the Hugging Face cache)."""
    EMBEDS, CLS, HIDDEN = 0, 1, 2

    def __init__(self, model):
        self.dir = model_resolve(model)
        self._m, self._s = _VP(), _VP()
        _check(lib.mer_clip_model_load(C.byref(self._m), _b(self.dir)))
        _check(lib.mer_clip_state_init(C.byref(self._s), self._m))

    def __del__(self):
        if getattr(self, "_s", None):
            lib.mer_clip_state_free(self._s)
        if getattr(self, "_m", None):
            lib.mer_clip_model_free(self._m)

    def forward(self, pixels, what=EMBEDS):
        """Preprocessed images (n, 3, S, S) -> (n, size of `what`) float32."""
        px = np.ascontiguousarray(pixels, dtype=np.float32)
        n = px.shape[0]
        out = np.zeros((n, lib.mer_clip_output_size(self._m, what)), np.float32)
        _check(lib.mer_clip_forward(self._s, px, n, what, out))
        return out

    def encode_images(self, paths, what=EMBEDS):
        """Image files -> (n, size) float32, preprocessed as CLIPImageProcessor."""
        imgs = (_Image * len(paths))()
        try:
            for i, p in enumerate(paths):
                _check(lib.mer_image_load(_b(p), C.byref(imgs[i])))
            out = np.zeros((len(paths), lib.mer_clip_output_size(self._m, what)), np.float32)
            _check(lib.mer_clip_encode_images(self._s, imgs, len(paths), what, out))
            return out
        finally:
            for i in range(len(paths)):
                lib.mer_image_free(C.byref(imgs[i]))


class Faces:
    """The bundled face-api detector + expression nets (dir None: the installed/bundled copy)."""

    def __init__(self, dir=None):
        self._m, self._s = _VP(), _VP()
        _check(lib.mer_faces_load(C.byref(self._m), _b(dir) if dir else None))
        _check(lib.mer_faces_state_init(C.byref(self._s)))

    def __del__(self):
        if getattr(self, "_s", None):
            lib.mer_faces_state_free(self._s)
        if getattr(self, "_m", None):
            lib.mer_faces_free(self._m)

    def detect(self, image_path):
        """Faces of an image file: a list of dicts (box, score, expression probabilities)."""
        img = _Image()
        _check(lib.mer_image_load(_b(image_path), C.byref(img)))
        faces = C.POINTER(_Face)()
        n = _I32()
        try:
            _check(lib.mer_faces_detect(self._m, self._s, C.byref(img), None, C.byref(faces), C.byref(n)))
            out = []
            for i in range(n.value):
                f = faces[i]
                out.append({"x": f.x, "y": f.y, "width": f.width, "height": f.height, "score": f.score,
                            "expression": lib.mer_face_expression_name(f.expression).decode()
                            if f.expression >= 0 else None,
                            "expressions": {lib.mer_face_expression_name(k).decode(): f.expressions[k]
                                            for k in range(7)}})
            return out
        finally:
            if faces:
                _libc.free(faces)
            lib.mer_image_free(C.byref(img))


class Run:
    """A trained run directory (mer train / mer demo) for prediction."""

    def __init__(self, rundir):
        self._r = _VP()
        _check(lib.mer_run_open(C.byref(self._r), _b(rundir)))
        self.classes = [lib.mer_run_class(self._r, c).decode() for c in range(lib.mer_run_n_classes(self._r))]
        self.modalities = [lib.mer_run_modality(self._r, m).decode()
                           for m in range(lib.mer_run_n_modalities(self._r))]

    def __del__(self):
        if getattr(self, "_r", None):
            lib.mer_run_free(self._r)

    def predict(self, features, names=None):
        """features: {modality: array (n, D)} (or (n, T, D)) -> probabilities (n, classes)."""
        mods = list(features.keys())
        arrs = [np.ascontiguousarray(features[m], dtype=np.float32) for m in mods]
        n = arrs[0].shape[0]
        names = names or ["clip%d" % i for i in range(n)]
        cls = (_CP * len(self.classes))(*[c.encode() for c in self.classes])
        mm = (_CP * len(mods))(*[m.encode() for m in mods])
        ds = _VP()
        _check(lib.mer_dataset_init(C.byref(ds), cls, len(self.classes), mm, len(mods)))
        try:
            for i in range(n):
                ts = (_Tensor * len(mods))()
                rows = [np.ascontiguousarray(a[i]) for a in arrs]
                for k, r in enumerate(rows):
                    shp = (_I64 * r.ndim)(*r.shape)
                    _check(lib.mer_tensor_view(C.byref(ts[k]), r.ctypes.data, 0, r.ndim, shp))
                _check(lib.mer_dataset_add(ds, names[i].encode(), -1, None, 0, ts))
            probs = np.zeros((n, len(self.classes)), np.float32)
            _check(lib.mer_run_predict(self._r, ds, probs))
            return probs
        finally:
            lib.mer_dataset_free(ds)
