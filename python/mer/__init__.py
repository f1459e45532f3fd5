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
    probs = mer.Run("models/emodb-acoustic").predict_media(["clip.wav"])   # the run's recipe
    metrics = mer.train("runs/new", {"audio": X}, labels, folds=5, epochs=100, seed=1)
    tm = mer.TextModel("hfl/chinese-roberta-wwm-ext")        # a directory or ORG/NAME
    f = tm.extract("今天天气真好", preset="mertools")            # (D,)
    a = mer.analyze("clip.mp4", text="...")                   # the dict of `mer analyze --json`
"""
import ctypes as C
import ctypes.util
import json
import os

import numpy as np

__all__ = ["MerError", "version", "lib", "data_path", "model_resolve", "convert", "decode_audio",
           "set_threads", "get_threads", "Checkpoint", "SpeechModel", "VisualModel", "TextModel", "Faces",
           "Run", "train", "analyze"]


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


class _Metrics(C.Structure):  # mer_metrics (MER_MAX_CLASSES 32)
    _fields_ = [("n_classes", C.c_int32), ("n", C.c_int64), ("waf", C.c_double), ("accuracy", C.c_double),
                ("macro_f1", C.c_double), ("uar", C.c_double), ("precision", C.c_double * 32),
                ("recall", C.c_double * 32), ("f1", C.c_double * 32), ("support", C.c_int64 * 32),
                ("confusion", C.c_int64 * (32 * 32))]


class _TrainParams(C.Structure):  # mer_train_params (MER_NAME_MAX 64)
    _fields_ = [("model", C.c_char * 64), ("hidden", C.c_int32), ("dropout", C.c_float), ("heads", C.c_int32),
                ("layers", C.c_int32), ("tokens", C.c_int32), ("folds", C.c_int32), ("epochs", C.c_int32),
                ("batch", C.c_int32), ("lr", C.c_double), ("l2", C.c_double), ("optimizer", C.c_int),
                ("clip_value", C.c_double), ("clip_norm", C.c_double), ("label_smoothing", C.c_double),
                ("balanced_weights", C.c_int32), ("select_last", C.c_int32), ("seed", C.c_uint64),
                ("search", C.c_int32), ("resume", C.c_int32), ("checkpoint_every", C.c_int32),
                ("checkpoint_seconds", C.c_double), ("plots", C.c_int32), ("recipe_json", C.c_char_p),
                ("encoder", C.c_char_p), ("n_threads", C.c_int32), ("progress", C.c_void_p),
                ("progress_user_data", C.c_void_p), ("abort", C.c_void_p), ("abort_user_data", C.c_void_p)]


class _AnalyzeParams(C.Structure):  # mer_analyze_params
    _fields_ = [("audio_model", C.c_char_p), ("faces_models", C.c_char_p), ("text", C.c_char_p),
                ("text_model", C.c_char_p),
                ("weights", C.c_double * 3), ("fps", C.c_double), ("max_frames", C.c_int32),
                ("timeline", C.c_int32), ("adapt", C.c_int32), ("adapt_min", C.c_int32),
                ("n_threads", C.c_int32), ("progress", C.c_void_p), ("progress_user_data", C.c_void_p),
                ("abort", C.c_void_p), ("abort_user_data", C.c_void_p)]


class _TextParams(C.Structure):  # mer_text_params
    _fields_ = [("layer_first", C.c_int32), ("layer_last", C.c_int32), ("combine", C.c_int),
                ("pool_mean", C.c_int32), ("skip_lead", C.c_int32), ("skip_trail", C.c_int32),
                ("precision", C.c_int), ("n_threads", C.c_int32), ("progress", C.c_void_p),
                ("progress_user_data", C.c_void_p), ("abort", C.c_void_p), ("abort_user_data", C.c_void_p)]


class _StateParams(C.Structure):  # mer_speech_state_params, mer_clip_state_params, mer_text_state_params
    _fields_ = [("precision", C.c_int), ("n_threads", C.c_int32), ("progress", C.c_void_p),
                ("progress_user_data", C.c_void_p), ("abort", C.c_void_p), ("abort_user_data", C.c_void_p)]


class _SpeechParams(C.Structure):  # mer_speech_params
    _fields_ = [("layer_first", C.c_int32), ("layer_last", C.c_int32), ("combine", C.c_int),
                ("pool_mean", C.c_int32), ("chunk_seconds", C.c_double), ("normalize", C.c_int32),
                ("precision", C.c_int), ("n_threads", C.c_int32), ("progress", C.c_void_p),
                ("progress_user_data", C.c_void_p), ("abort", C.c_void_p), ("abort_user_data", C.c_void_p)]


class _ExtractParams(C.Structure):  # mer_extract_params
    _fields_ = [("list", C.c_char_p), ("overwrite", C.c_int32), ("batch", C.c_int32), ("recipe", C.c_char_p),
                ("n_threads", C.c_int32), ("progress", C.c_void_p), ("progress_user_data", C.c_void_p),
                ("abort", C.c_void_p), ("abort_user_data", C.c_void_p)]


class _ExtractItem(C.Structure):  # mer_extract_item
    _fields_ = [("input", C.c_char_p), ("name", C.c_char_p), ("outcome", C.c_int), ("status", C.c_int),
                ("error", C.c_char_p), ("frames", C.c_int32), ("frames_no_face", C.c_int32)]


class _ExtractResult(C.Structure):  # mer_extract_result
    _fields_ = [("items", C.POINTER(_ExtractItem)), ("n", C.c_int64), ("written", C.c_int64),
                ("skipped", C.c_int64), ("failed", C.c_int64), ("frames", C.c_int64),
                ("frames_no_face", C.c_int64), ("inputs_with_faceless_frames", C.c_int64), ("priv", C.c_void_p)]


class _EvalParams(C.Structure):  # mer_eval_params
    _fields_ = [("name_col", C.c_char_p), ("label_col", C.c_char_p), ("pred_col", C.c_char_p)]


class _EvalResult(C.Structure):  # mer_eval_result (MER_MAX_CLASSES 32)
    _fields_ = [("n", C.c_int64), ("unlabeled", C.c_int64), ("labels", C.c_int64), ("n_classes", C.c_int32),
                ("classes", C.c_char_p * 32), ("metrics", _Metrics)]


class _TextInfo(C.Structure):  # mer_text_info
    _fields_ = [("arch", C.c_int), ("model_type", C.c_char * 32), ("n_layers", C.c_int32),
                ("hidden_size", C.c_int32), ("n_heads", C.c_int32), ("n_kv_heads", C.c_int32),
                ("head_dim", C.c_int32), ("intermediate_size", C.c_int32), ("vocab_size", C.c_int32),
                ("max_positions", C.c_int32), ("alibi", C.c_int32), ("qkv_bias", C.c_int32),
                ("pad_token_id", C.c_int32), ("quantized", C.c_int32), ("n_params", C.c_int64),
                ("weight_bytes", C.c_int64)]


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
_sig("mer_speech_state_default_params", _StateParams)
_sig("mer_clip_state_default_params", _StateParams)
_sig("mer_text_state_default_params", _StateParams)
_sig("mer_speech_model_load", C.c_int, C.POINTER(_VP), _CP, _VP)
_sig("mer_speech_model_free", None, _VP)
_sig("mer_speech_frames", _I64, _VP, _I64)
_sig("mer_speech_state_init", C.c_int, C.POINTER(_VP), _VP, C.POINTER(_StateParams))
_sig("mer_speech_state_free", None, _VP)
_sig("mer_speech_normalize", None, _F32P, _I64)
_sig("mer_speech_encode", C.c_int, _VP, _F32P, _I64, _I32, _I32, _F32P)
_sig("mer_clip_model_load", C.c_int, C.POINTER(_VP), _CP, _VP)
_sig("mer_clip_model_free", None, _VP)
_sig("mer_clip_output_size", _I64, _VP, C.c_int)
_sig("mer_clip_state_init", C.c_int, C.POINTER(_VP), _VP, C.POINTER(_StateParams))
_sig("mer_clip_state_free", None, _VP)
_sig("mer_clip_forward", C.c_int, _VP, _F32P, _I32, C.c_int, _F32P)
_sig("mer_clip_encode_images", C.c_int, _VP, C.POINTER(_Image), _I32, C.c_int, _F32P)
_sig("mer_image_load", C.c_int, _CP, C.POINTER(_Image))
_sig("mer_image_free", None, C.POINTER(_Image))
_sig("mer_faces_load", C.c_int, C.POINTER(_VP), _CP, _VP)
_sig("mer_faces_free", None, _VP)
_sig("mer_faces_state_init", C.c_int, C.POINTER(_VP), _VP)
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
_sig("mer_set_threads", None, C.c_int)
_sig("mer_get_threads", C.c_int)
_sig("mer_run_recipe", _CP, _VP)
_sig("mer_acoustic_extract", C.c_int, _CP, _CP, _CP, C.POINTER(C.POINTER(C.c_float)), C.POINTER(_I32),
     C.POINTER(_I64))
_sig("mer_train_default_params", _TrainParams)
_sig("mer_train_run", C.c_int, _VP, _VP, C.POINTER(_TrainParams), _CP, C.POINTER(_Metrics))
_sig("mer_analyze_default_params", _AnalyzeParams)
_sig("mer_analyze", C.c_int, _CP, C.POINTER(_AnalyzeParams), C.POINTER(_VP))
_sig("mer_analysis_to_json", C.c_int, _VP, C.POINTER(_VP))
_sig("mer_analysis_free", None, _VP)
_sig("mer_text_model_load", C.c_int, C.POINTER(_VP), _CP, _VP)
_sig("mer_text_model_free", None, _VP)
_sig("mer_text_model_info", None, _VP, C.POINTER(_TextInfo))
_sig("mer_text_state_init", C.c_int, C.POINTER(_VP), _VP, C.POINTER(_StateParams))
_sig("mer_text_state_free", None, _VP)
_sig("mer_text_state_set_precision", C.c_int, _VP, C.c_int)
_sig("mer_text_default_params", _TextParams)
_sig("mer_text_mertools_params", _TextParams)
_sig("mer_text_extract", C.c_int, _VP, _VP, _CP, C.c_size_t, C.POINTER(_TextParams),
     C.POINTER(C.POINTER(C.c_float)), C.POINTER(_I32), C.POINTER(_I64))
_sig("mer_tokenizer_load", C.c_int, C.POINTER(_VP), _CP)
_sig("mer_tokenizer_free", None, _VP)
_sig("mer_tokenizer_encode", C.c_int, _VP, _CP, C.c_size_t, C.c_int, C.POINTER(C.POINTER(C.c_int32)),
     C.POINTER(_I64))

_sig("mer_speech_default_params", _SpeechParams)
_sig("mer_speech_mertools_params", _SpeechParams)
_sig("mer_speech_recipe_to_json", C.c_int, _CP, C.POINTER(_SpeechParams), C.POINTER(_VP))
_sig("mer_extract_speech_files", C.c_int, _VP, C.POINTER(_CP), _I64, _CP, C.POINTER(_SpeechParams),
     C.POINTER(_ExtractParams), C.POINTER(_ExtractResult))
_sig("mer_extract_default_params", _ExtractParams)
_sig("mer_extract_text_csv", C.c_int, _VP, _VP, _CP, _CP, _CP, _CP, C.POINTER(_TextParams), C.POINTER(_ExtractParams),
     C.POINTER(_ExtractResult))
_sig("mer_extract_result_free", None, C.POINTER(_ExtractResult))
_sig("mer_eval_default_params", _EvalParams)
_sig("mer_eval_csv", C.c_int, _CP, _CP, C.POINTER(_EvalParams), C.POINTER(_EvalResult))
_sig("mer_eval_result_free", None, C.POINTER(_EvalResult))

def _layout_check():
    """The structs above mirror mer.h by hand: read the library's defaults through them and
    refuse to run on a libmer.so whose layout differs (instead of passing it garbage)."""
    t = lib.mer_train_default_params()
    a = lib.mer_analyze_default_params()
    x = lib.mer_text_mertools_params()
    states = [f() for f in (lib.mer_speech_state_default_params, lib.mer_clip_state_default_params,
                            lib.mer_text_state_default_params)]
    ok = (all((st.precision, st.n_threads) == (0, 0) and not st.progress and not st.progress_user_data
              and not st.abort and not st.abort_user_data for st in states) and t.model == b"attention" and (t.hidden, t.heads, t.layers, t.tokens, t.folds, t.epochs, t.batch)
          == (128, 4, 1, 4, 5, 100, 32) and abs(t.dropout - 0.3) < 1e-6 and t.lr == 1e-3 and t.l2 == 1e-5
          and (t.checkpoint_every, t.checkpoint_seconds, t.plots) == (1, 10.0, 1)
          and t.recipe_json is None and t.encoder is None and not t.progress and not t.progress_user_data
          and t.n_threads == 0 and not t.abort and not t.abort_user_data
          and list(a.weights) == [1.0, 1.0, 0.5] and (a.fps, a.max_frames, a.timeline) == (2.0, 300, 0)
          and not a.progress_user_data and a.text_model is None and (a.adapt, a.adapt_min) == (0, 5)
          and a.n_threads == 0 and not a.abort and not a.abort_user_data
          and (x.layer_first, x.layer_last, x.combine, x.pool_mean, x.skip_lead, x.skip_trail, x.precision)
          == (-4, -1, 1, 1, -1, -1, 0) and x.n_threads == 0 and not x.progress_user_data
          and not x.abort_user_data)
    e = lib.mer_extract_default_params()
    v = lib.mer_eval_default_params()
    m = lib.mer_speech_mertools_params()
    ok = ok and (m.layer_first, m.layer_last, m.combine, m.pool_mean, m.chunk_seconds, m.normalize, m.precision,
                 m.n_threads) == (-4, -1, 1, 1, 10.0, -1, 0, 0) and not m.progress and not m.abort_user_data
    ok = ok and (e.list, e.overwrite, e.batch, e.recipe, e.n_threads) == (None, 0, 1, None, 0) and not e.progress \
        and not e.abort_user_data and (v.name_col, v.label_col, v.pred_col) == (b"name", b"emotion", None)
    if not ok:
        raise ImportError("mer: this binding's mer_train_params / mer_analyze_params / mer_text_params / "
                          "mer_*_state_params do not "
                          "match the loaded libmer.so (%s); update python/mer with mer.h" % lib._name)


_layout_check()

_libc = C.CDLL(None)
_libc.free.argtypes = [_VP]
_libc.free.restype = None


def _layer_options(p, layers, combine, pool, combine_codes):
    """The layer range, combination and pooling options of a speech or text params struct, each
    set only when given (later arguments override a preset, as on the CLI)."""
    if layers is not None:
        p.layer_first, p.layer_last = layers
    if combine is not None:
        p.combine = combine_codes[combine]
    if pool is not None:
        p.pool_mean = 1 if pool == "mean" else 0


def _check(status):
    if status != 0:
        raise MerError(lib.mer_status_str(status).decode(), (lib.mer_last_error() or b"").decode("utf-8", "replace"))


_PROGRESS = C.CFUNCTYPE(None, C.c_int64, C.c_int64, C.c_void_p)   # mer_progress_fn
_ABORT = C.CFUNCTYPE(C.c_bool, C.c_void_p)                          # mer_abort_fn


class _TrainProgress(C.Structure):  # mer_train_progress
    _fields_ = [("trial", C.c_int32), ("n_trials", C.c_int32), ("fold", C.c_int32), ("n_folds", C.c_int32),
                ("epoch", C.c_int32), ("n_epochs", C.c_int32), ("train_loss", C.c_double),
                ("heldout_waf", C.c_double), ("best_waf", C.c_double), ("done", C.c_int64), ("total", C.c_int64)]


_TRAIN_PROGRESS = C.CFUNCTYPE(None, C.POINTER(_TrainProgress), C.c_void_p)  # mer_train_progress_fn


class _Calls:
    """Python callables as the progress and abort callbacks of a params struct: progress(done,
    total) informs, abort() -> true stops the call (MerError MER_ERR_ABORTED). An exception
    raised in either stops the call too and is raised again when the call returns (so Ctrl-C in a
    callback interrupts a long call). Keeps the ctypes thunks alive as long as it lives."""

    def __init__(self, progress=None, abort=None, train=False):
        self.progress, self.abort, self.error = progress, abort, None
        if progress:  # mer_train_params' progress gets the epoch's struct: its (done, total)
            self._p = (_TRAIN_PROGRESS(lambda t, u: self._on_progress(t[0].done, t[0].total, u)) if train
                       else _PROGRESS(self._on_progress))
        else:
            self._p = None
        self._a = _ABORT(self._on_abort) if (progress or abort) else None

    def _on_progress(self, done, total, _user):
        if self.error is None:
            try:
                self.progress(done, total)
            except BaseException as e:  # raised again after the call
                self.error = e

    def _on_abort(self, _user):
        if self.error is None and self.abort:
            try:
                return bool(self.abort())
            except BaseException as e:
                self.error = e
        return self.error is not None

    def fill(self, p):
        """Set p.progress / p.abort (their user data stay NULL: the thunks carry the state)."""
        p.progress = C.cast(self._p, C.c_void_p).value if self._p else None
        p.abort = C.cast(self._a, C.c_void_p).value if self._a else None
        return p

    def check(self, status):
        """_check, but a callback's exception first."""
        if self.error is not None:
            e, self.error = self.error, None
            raise e
        _check(status)


def _state_params(default, precision=0, n_threads=0, calls=None):
    p = default()
    p.precision, p.n_threads = precision, int(n_threads)
    return calls.fill(p) if calls else p


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


def set_threads(n):
    """Worker threads of every later call (0: the online CPUs), as the CLI's --threads."""
    lib.mer_set_threads(int(n))


def get_threads():
    return lib.mer_get_threads()


def _take_floats(p, nd, shape):
    """A malloc'd float array from the library -> numpy (copied), the C buffer freed."""
    try:
        shp = tuple(shape[i] for i in range(nd.value))
        n = int(np.prod(shp)) if shp else 1
        return np.ctypeslib.as_array(p, shape=(n,)).copy().reshape(shp) if n else np.zeros(shp, np.float32)
    finally:
        _libc.free(p)


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
    """A HuBERT / wav2vec 2.0 checkpoint directory (or ORG/NAME in the Hugging Face cache).
    n_threads: threads of its calls (0: mer.set_threads' count); progress(done, total) after each
    transformer layer; abort() polled before each layer, true stops the call (MerError
    MER_ERR_ABORTED; the model stays usable)."""

    def __init__(self, model, n_threads=0, progress=None, abort=None):
        self.dir = model_resolve(model)
        self._m, self._s = _VP(), _VP()
        self._calls = _Calls(progress, abort)
        _check(lib.mer_speech_model_load(C.byref(self._m), _b(self.dir), None))
        sp = _state_params(lib.mer_speech_state_default_params, 0, n_threads, self._calls)
        _check(lib.mer_speech_state_init(C.byref(self._s), self._m, C.byref(sp)))
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
        self._calls.check(lib.mer_speech_encode(self._s, x, x.size, first, last, out))
        return out

    COMBINE = {"stack": 0, "sum": 1, "mean": 2}

    def extract_files(self, inputs, out, preset=None, layers=None, combine=None, pool=None, chunk_seconds=10.0,
                      batch=1, list=None, overwrite=False, recipe=True):
        """`mer extract audio` in one library call (mer_extract_speech_files): each input (and each
        line of list) decoded at the model's rate and extracted (preset="mertools", or layers=(first,
        last) with -1 for "the last", combine stack|sum|mean, pool "mean"|None, chunk_seconds), batch
        inputs per forward, into out (one input: the .npy; else a directory of <name>.npy with
        recipe.json unless recipe=False). progress(done, n) per input, abort() before each input and
        layer. Returns {"written", "skipped", "failed", "items": [(input, outcome, error), ...]}."""
        p = lib.mer_speech_mertools_params() if preset == "mertools" else lib.mer_speech_default_params()
        if preset not in (None, "mertools"):
            raise ValueError("preset must be None or 'mertools'")
        if preset is None:
            p.chunk_seconds = chunk_seconds
        _layer_options(p, layers, combine, pool, self.COMBINE)
        rj = None
        if recipe:
            txt = _VP()
            _check(lib.mer_speech_recipe_to_json(_b(self.dir), C.byref(p), C.byref(txt)))
            rj = _take_str(txt).encode()
        ep = self._calls.fill(lib.mer_extract_default_params())
        ep.batch, ep.overwrite = int(batch), 1 if overwrite else 0
        ep.list = _b(list) if list else None
        ep.recipe = rj
        arr = (_CP * max(1, len(inputs)))(*[_b(x) for x in inputs])
        res = _ExtractResult()
        try:
            self._calls.check(lib.mer_extract_speech_files(self._s, arr, len(inputs), _b(out), C.byref(p), C.byref(ep),
                                                           C.byref(res)))
            items = [(res.items[i].input.decode("utf-8", "replace"), TextModel.OUTCOME[res.items[i].outcome],
                      res.items[i].error.decode("utf-8", "replace") if res.items[i].error else None)
                     for i in range(res.n)]
            return {"written": res.written, "skipped": res.skipped, "failed": res.failed, "items": items}
        finally:
            lib.mer_extract_result_free(C.byref(res))


class VisualModel:
    """A CLIP vision checkpoint directory (or ORG/NAME in the Hugging Face cache). n_threads,
    progress(done, total) (images) and abort() (polled before each encoder layer) as SpeechModel."""
    EMBEDS, CLS, HIDDEN = 0, 1, 2

    def __init__(self, model, n_threads=0, progress=None, abort=None):
        self.dir = model_resolve(model)
        self._m, self._s = _VP(), _VP()
        self._calls = _Calls(progress, abort)
        _check(lib.mer_clip_model_load(C.byref(self._m), _b(self.dir), None))
        sp = _state_params(lib.mer_clip_state_default_params, 0, n_threads, self._calls)
        _check(lib.mer_clip_state_init(C.byref(self._s), self._m, C.byref(sp)))

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
        self._calls.check(lib.mer_clip_forward(self._s, px, n, what, out))
        return out

    def encode_images(self, paths, what=EMBEDS):
        """Image files -> (n, size) float32, preprocessed as CLIPImageProcessor."""
        imgs = (_Image * len(paths))()
        try:
            for i, p in enumerate(paths):
                _check(lib.mer_image_load(_b(p), C.byref(imgs[i])))
            out = np.zeros((len(paths), lib.mer_clip_output_size(self._m, what)), np.float32)
            self._calls.check(lib.mer_clip_encode_images(self._s, imgs, len(paths), what, out))
            return out
        finally:
            for i in range(len(paths)):
                lib.mer_image_free(C.byref(imgs[i]))


class TextModel:
    """A Hugging Face text encoder (bert / roberta / llama / qwen2 / baichuan, or an int8 one from
    `mer quantize`): a directory or ORG/NAME in the Hugging Face cache; the tokenizer files come
    from the same place unless tokenizer= names another. n_threads; progress(done, total) once
    per transcript; abort() polled before each transformer layer (MerError MER_ERR_ABORTED)."""
    COMBINE = {"stack": 0, "sum": 1, "mean": 2}
    PRECISION = {"f32": 0, "bf16": 1, "int8": 2}

    def __init__(self, model, tokenizer=None, precision="f32", n_threads=0, progress=None, abort=None):
        if precision not in self.PRECISION:
            raise ValueError("precision must be one of %s" % sorted(self.PRECISION))
        self.dir = model_resolve(model)
        self.tokenizer_dir = model_resolve(tokenizer) if tokenizer else self.dir
        self._m, self._s, self._t = _VP(), _VP(), _VP()
        self.precision, self.n_threads = precision, int(n_threads)
        self._calls = _Calls(progress, abort)
        _check(lib.mer_text_model_load(C.byref(self._m), _b(self.dir), None))
        _check(lib.mer_tokenizer_load(C.byref(self._t), _b(self.tokenizer_dir)))
        sp = _state_params(lib.mer_text_state_default_params, self.PRECISION[precision], n_threads, self._calls)
        _check(lib.mer_text_state_init(C.byref(self._s), self._m, C.byref(sp)))
        info = _TextInfo()
        lib.mer_text_model_info(self._m, C.byref(info))
        self.model_type = info.model_type.decode()
        self.n_layers, self.hidden_size = info.n_layers, info.hidden_size

    def __del__(self):
        if getattr(self, "_s", None):
            lib.mer_text_state_free(self._s)
        if getattr(self, "_t", None):
            lib.mer_tokenizer_free(self._t)
        if getattr(self, "_m", None):
            lib.mer_text_model_free(self._m)

    def tokenize(self, text, add_special=True):
        """Token ids (int32) of text, with the special tokens the model's tokenizer adds."""
        raw = text.encode("utf-8")
        ids, n = C.POINTER(C.c_int32)(), _I64()
        _check(lib.mer_tokenizer_encode(self._t, raw, len(raw), 1 if add_special else 0, C.byref(ids), C.byref(n)))
        try:
            return np.ctypeslib.as_array(ids, shape=(n.value,)).copy() if n.value else np.zeros(0, np.int32)
        finally:
            _libc.free(ids)

    def _params(self, preset, layers, combine, pool):
        p = lib.mer_text_mertools_params() if preset == "mertools" else lib.mer_text_default_params()
        if preset not in (None, "mertools"):
            raise ValueError("preset must be None or 'mertools'")
        _layer_options(p, layers, combine, pool, self.COMBINE)
        p.precision = self.PRECISION[self.precision]
        p.n_threads = self.n_threads
        return self._calls.fill(p)

    def extract(self, text, preset=None, layers=None, combine=None, pool=None):
        """The feature of one transcript, as `mer extract text` writes it: preset="mertools" (sum
        of the last 4 hidden states, mean over the text's own tokens: (D,)), or layers=(first,
        last) (default all, 0 = embeddings), combine stack (K, T, D) | sum | mean (T, D), and
        pool="mean" (drops T). Later arguments override the preset, as on the CLI."""
        p = self._params(preset, layers, combine, pool)
        raw = text.encode("utf-8")
        out, nd, shape = C.POINTER(C.c_float)(), _I32(), (_I64 * 3)()
        self._calls.check(lib.mer_text_extract(self._s, self._t, raw, len(raw), C.byref(p), C.byref(out),
                                               C.byref(nd), shape))
        return _take_floats(out, nd, shape)

    OUTCOME = {0: "pending", 1: "written", 2: "skipped", 3: "failed"}

    def extract_csv(self, csv, out, name_col="name", text_col="chinese", preset=None, layers=None, combine=None,
                    pool=None, overwrite=False, recipe=None):
        """Every transcript of a CSV into out/<name>.npy, as `mer extract text` (one library call,
        mer_extract_text_csv): existing files skipped unless overwrite, a failed row recorded and the
        others go on, recipe (JSON text) recorded as out/recipe.json. progress(done, rows) per row;
        abort() polled before each row and layer. Returns {"written", "skipped", "failed", "items":
        [(name, "written"|"skipped"|"failed"|"pending", error or None), ...]}."""
        p = self._params(preset, layers, combine, pool)
        p.progress = None  # progress per row (the extract params'), not per transcript as well
        ep = self._calls.fill(lib.mer_extract_default_params())
        ep.overwrite = 1 if overwrite else 0
        ep.recipe = recipe.encode() if recipe else None
        ep.n_threads = self.n_threads
        res = _ExtractResult()
        try:
            self._calls.check(lib.mer_extract_text_csv(self._s, self._t, _b(csv), name_col.encode(), text_col.encode(),
                                                       _b(out), C.byref(p), C.byref(ep), C.byref(res)))
            items = [(res.items[i].name.decode(), self.OUTCOME[res.items[i].outcome],
                      res.items[i].error.decode("utf-8", "replace") if res.items[i].error else None)
                     for i in range(res.n)]
            return {"written": res.written, "skipped": res.skipped, "failed": res.failed, "items": items}
        finally:
            lib.mer_extract_result_free(C.byref(res))


def eval_csv(labels, pred, name_col="name", label_col="emotion", pred_col=None):
    """`mer eval` (mer_eval_csv): pred CSV scored against labels CSV over the clips in both ->
    {"n", "unlabeled", "classes", "waf", "accuracy", "macro_f1", "uar", "confusion" (list of rows)}."""
    p = lib.mer_eval_default_params()
    p.name_col, p.label_col = name_col.encode(), label_col.encode()
    p.pred_col = pred_col.encode() if pred_col else None
    r = _EvalResult()
    _check(lib.mer_eval_csv(_b(labels), _b(pred), C.byref(p), C.byref(r)))
    try:
        c = r.n_classes
        m = r.metrics
        return {"n": r.n, "unlabeled": r.unlabeled, "classes": [r.classes[k].decode() for k in range(c)],
                "waf": m.waf, "accuracy": m.accuracy, "macro_f1": m.macro_f1, "uar": m.uar,
                "confusion": [[m.confusion[t * c + k] for k in range(c)] for t in range(c)]}
    finally:
        lib.mer_eval_result_free(C.byref(r))


def analyze(path, audio_model=None, faces_models=None, text=None, weights=None, fps=2.0, max_frames=300,
            timeline=False, text_model=None, adapt=True, adapt_min=5, n_threads=0, progress=None, abort=None):
    """`mer analyze --json` as a dict: the clip's speech (a run, a directory or ORG/NAME in the
    Hugging Face cache; default the bundled one), faces and transcript (the word lists, or a text
    run with text_model), each on the six MER2024 labels, and their fusion (docs/analyze.md).
    weights: {"audio": 1, "face": 1, "text": 0.5}. adapt: speaker adaptation over the 2 s speech
    windows of a clip with at least adapt_min of them (--adapt auto|none). n_threads, progress(done,
    total) and abort() (MerError MER_ERR_ABORTED) as mer_analyze_params."""
    p = lib.mer_analyze_default_params()
    calls = _Calls(progress, abort)
    calls.fill(p)
    p.n_threads = int(n_threads)
    keep = []
    if audio_model is not None:
        keep.append(_b(model_resolve(audio_model)))
        p.audio_model = keep[-1]
    if faces_models is not None:
        keep.append(_b(faces_models))
        p.faces_models = keep[-1]
    if text is not None:
        keep.append(text.encode("utf-8"))
        p.text = keep[-1]
    if text_model is not None:
        keep.append(_b(text_model))
        p.text_model = keep[-1]
    for k, w in (weights or {}).items():
        p.weights[{"audio": 0, "face": 1, "text": 2}[k]] = float(w)
    p.fps, p.max_frames, p.timeline = float(fps), int(max_frames), 1 if timeline else 0
    p.adapt, p.adapt_min = (0 if adapt else 1), int(adapt_min)
    a = _VP()
    calls.check(lib.mer_analyze(_b(path), C.byref(p), C.byref(a)))
    try:
        j = _VP()
        _check(lib.mer_analysis_to_json(a, C.byref(j)))
        return json.loads(_take_str(j))
    finally:
        lib.mer_analysis_free(a)


def _dataset(classes, features, labels=None, names=None, groups=None, train_only=None):
    """A mer_dataset handle (the caller frees it) from {modality: (n, D) array or n (T, D) arrays}."""
    mods = list(features.keys())
    n = len(features[mods[0]])
    if any(len(features[m]) != n for m in mods):
        raise ValueError("every modality needs the same number of clips")
    names = names or ["clip%d" % i for i in range(n)]
    cls = (_CP * len(classes))(*[c.encode() for c in classes])
    mm = (_CP * len(mods))(*[m.encode() for m in mods])
    index = {c: i for i, c in enumerate(classes)}
    ds = _VP()
    _check(lib.mer_dataset_init(C.byref(ds), cls, len(classes), mm, len(mods)))
    try:
        for i in range(n):
            ts = (_Tensor * len(mods))()
            rows = [np.ascontiguousarray(features[m][i], dtype=np.float32) for m in mods]
            for k, r in enumerate(rows):
                shp = (_I64 * r.ndim)(*r.shape)
                _check(lib.mer_tensor_view(C.byref(ts[k]), r.ctypes.data, 0, r.ndim, shp))
            lab = labels[i] if labels is not None else None
            if lab is not None and lab not in index:
                raise ValueError("clip %s: label %r is not one of the classes %s" % (names[i], lab, classes))
            _check(lib.mer_dataset_add(ds, names[i].encode(), index[lab] if lab is not None else -1,
                                       groups[i].encode() if groups else None,
                                       1 if train_only and train_only[i] else 0, ts))
    except BaseException:
        lib.mer_dataset_free(ds)
        raise
    return ds


def train(rundir, features, labels, classes=None, names=None, groups=None, test=None, test_names=None,
          recipe=None, progress=None, abort=None, **params):
    """`mer train` on arrays: K-fold cross-validation of a fusion model written to rundir (the run
    directory `mer predict` and mer.Run read). features: {modality: (n, D) array, or a list of
    n (T, D) arrays}; labels: n class names (None: unlabeled); classes: their order (default
    sorted); groups: n group names (grouped folds); test: {modality: ...} also predicted ->
    test.csv. params: the fields of mer_train_params (model, hidden, dropout, heads, layers,
    tokens, folds, epochs, batch, lr, l2, optimizer "adam"|"adamw", clip_value, clip_norm,
    label_smoothing, balanced_weights, select_last, seed, search, resume, checkpoint_every,
    checkpoint_seconds, plots, n_threads). progress(done, total) and abort() as mer_train_params
    (abort: MerError MER_ERR_ABORTED, the run resumable). Returns the metrics (mean over folds:
    waf, accuracy, macro_f1, uar; confusion as a nested list)."""
    p = lib.mer_train_default_params()
    calls = _Calls(progress, abort, train=True)
    fields = {f for f, _ in _TrainParams._fields_} - {"recipe_json", "encoder", "progress", "progress_user_data",
                                                      "abort", "abort_user_data"}
    for k, v in params.items():
        if k not in fields:
            raise TypeError("train: unknown parameter %r (one of %s)" % (k, ", ".join(sorted(fields))))
        if k == "model":
            v = v.encode()
        elif k == "optimizer":
            v = {"adam": 0, "adamw": 1}[v] if isinstance(v, str) else int(v)
        setattr(p, k, v)
    calls.fill(p)
    if recipe is not None:
        rj = (recipe if isinstance(recipe, str) else json.dumps(recipe)).encode()
        p.recipe_json = rj
    classes = list(classes) if classes else sorted({l for l in labels if l is not None})
    ds = _dataset(classes, features, labels, names, groups)
    ts = _VP()
    try:
        if test is not None:
            ts = _dataset(classes, test, None, test_names)
        m = _Metrics()
        calls.check(lib.mer_train_run(ds, ts, C.byref(p), _b(rundir), C.byref(m)))
        k = m.n_classes
        return {"waf": m.waf, "accuracy": m.accuracy, "macro_f1": m.macro_f1, "uar": m.uar, "n": m.n,
                "classes": classes, "confusion": [[m.confusion[t * k + q] for q in range(k)] for t in range(k)]}
    finally:
        lib.mer_dataset_free(ds)
        if ts:
            lib.mer_dataset_free(ts)


class Faces:
    """The bundled face-api detector + expression nets (dir None: the installed/bundled copy)."""

    def __init__(self, dir=None):
        self._m, self._s = _VP(), _VP()
        _check(lib.mer_faces_load(C.byref(self._m), _b(dir) if dir else None, None))
        _check(lib.mer_faces_state_init(C.byref(self._s), None))

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
        """features: {modality: array (n, D)} (or (n, T, D), or a list of n (T, D)) ->
        probabilities (n, classes), the fold models' mean as `mer predict --feature`."""
        mods = list(features.keys())
        n = len(features[mods[0]])
        ds = _dataset(self.classes, features, None, names)
        try:
            probs = np.zeros((n, len(self.classes)), np.float32)
            _check(lib.mer_run_predict(self._r, ds, probs))
            return probs
        finally:
            lib.mer_dataset_free(ds)

    def predict_media(self, paths):
        """Media files -> probabilities (n, classes), features extracted with the recipe the
        run recorded, as `mer predict --run RUNDIR --input FILE...`."""
        recipe = lib.mer_run_recipe(self._r)
        if recipe is None:
            raise MerError("MER_ERR_INVALID_ARG", "the run has no feature recipe (train with a recipe), so media "
                           "cannot be used; give features to predict()")
        feats = {m: [] for m in self.modalities}
        for path in paths:
            for m in self.modalities:
                out, nd, shape = C.POINTER(C.c_float)(), _I32(), (_I64 * 8)()
                _check(lib.mer_acoustic_extract(recipe, _b(path), m.encode(), C.byref(out), C.byref(nd), shape))
                feats[m].append(_take_floats(out, nd, shape))
        # clip names as the CLI's: the file name without directory and extension
        return self.predict(feats, [os.path.splitext(os.path.basename(p))[0] for p in paths])
