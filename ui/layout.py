"""The page: Gradio Blocks wiring of the studio's two steps, the result views and the attention inspector.

`build_demo(studio, info)` takes the app's `Studio` (duck-typed: prepare / panels / try_on / *_view / api_tryon)
so this module holds no model or preprocessing logic. Every handler turns failures into `gr.Error` with a
sentence from `ui.messages`: the page never shows a traceback.
"""
import functools
import inspect
import logging
import queue
import threading

import gradio as gr
import numpy as np

from ui import viz
from ui.editor import BRUSH_COLOUR, editor_value, mask_from_editor
from ui.examples import EXAMPLES, garment_examples, package_person_examples
from ui.messages import NO_GARMENT_PHOTO, NO_PERSON_PHOTO, NO_RESULT, NOT_PREPARED, user_message

log = logging.getLogger("stableviton.app")

SAMPLERS = ("plms", "ddim", "dpm++")
CATEGORY = "Upper body (VITON-HD checkpoint)"
DEMO_CATEGORY = "Upper body (synthetic demo model)"


class PhotoInput(gr.Image):
    """`gr.Image` that hands unreadable uploads (text renamed .png, 0 bytes, decompression bombs) to the app as a
    file path instead of failing inside Gradio, so the app can say what is wrong in a sentence."""

    def get_block_name(self) -> str:
        return "image"

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Exception:  # noqa: BLE001 - the app's loader gives the user-readable reason
            path = getattr(payload, "path", None)
            if path:
                return str(path)
            raise


def allowed_paths() -> list[str]:
    return [str(EXAMPLES), *package_person_examples()]


def guarded(what: str):
    """Run a handler; turn any exception into a human `gr.Error` (logged with traceback if unexpected)."""
    def deco(fn):
        if inspect.isgeneratorfunction(fn):  # streaming handlers: the same, for every value they yield
            @functools.wraps(fn)
            def streaming(*args, **kwargs):
                try:
                    yield from fn(*args, **kwargs)
                except gr.Error:
                    raise
                except Exception as e:  # noqa: BLE001
                    raise gr.Error(user_message(e, what), duration=None) from None
            return streaming

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as e:  # noqa: BLE001
                raise gr.Error(user_message(e, what), duration=None) from None
        return wrapper
    return deco


N_TRYON_OUTPUTS = 18  # the try-on button's outputs before the live preview


def reporter(progress):
    return lambda desc, frac: progress(frac, desc=desc)


def _fmt_timings(t: dict) -> str:
    return ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in t.items())


def build_demo(studio, info, licence: str) -> gr.Blocks:
    tiny, synthetic = info.mode == "tiny", info.mode == "demo"
    default_steps, default_sampler = info.default_steps, info.default_sampler
    mh, mw = info.map_size
    category = DEMO_CATEGORY if synthetic else CATEGORY

    with gr.Blocks(title="StableVITON studio") as demo:
        gr.Markdown("# StableVITON studio\nVirtual try-on with an attention inspector: see where on the garment "
                    "the model looked for every point of the result.")
        gr.Markdown(f"**Model:** {info.description}", elem_id="mode-banner")
        if info.mode == "none":
            gr.Markdown("### How to get the weights\n```\n" + info.weights_help + "\n```", elem_id="weights-help")
        if synthetic:
            with gr.Accordion("How to add the released checkpoint (real photos)", open=False):
                gr.Markdown("```\n" + info.weights_help + "\n```", elem_id="weights-help")
        gr.Markdown(f"**Licence:** {licence}", elem_id="licence")

        prep_state = gr.State(None)
        run_state = gr.State(None)
        query_state = gr.State(None)

        gr.Markdown("## 1. Your photo and a garment")
        with gr.Row():
            person = PhotoInput(label="Your photo (upload or webcam)", sources=["upload", "webcam"], type="filepath",
                                elem_id="person", height=360)
            garment = PhotoInput(label="Garment (flat lay or catalogue photo)", sources=["upload", "clipboard"],
                                 type="filepath", elem_id="garment", height=360)
            with gr.Column():
                gr.Dropdown([category], value=category, label="Category", interactive=False, elem_id="category",
                            info="Trained on upper-body garments (tops, shirts, T-shirts) only; lower-body and "
                                 "dresses are not supported by these weights.")
                parser_choice = gr.Dropdown(studio.parser_choices(), value="auto", label="Human parser",
                                            elem_id="parser", info="auto = a learned parser (SCHP, FASHN) when "
                                            "its weights are here, else the offline one; the panels say which ran.")
                prepare_btn = gr.Button("Prepare", variant="primary", elem_id="prepare-btn")
                gr.Markdown("Prepare finds your pose and the region the garment will cover. Check the red mask, "
                            "fix it with the brush or eraser, then press *Try on*.")
        if synthetic:
            shown = studio.demo_examples()
            with gr.Row():
                gr.Examples([[str(e.person_png), str(e.garment_png)] for e in shown], inputs=[person, garment],
                            label="Held-out synthetic pairs (never seen in training; person with its own garment)",
                            examples_per_page=len(shown), elem_id="synthetic-examples")
                gr.Examples([[str(e.garment_png)] for e in shown], inputs=[garment],
                            label="Synthetic garments (combine with any synthetic person)",
                            examples_per_page=len(shown))
        with gr.Row():
            persons = package_person_examples()
            if persons:
                gr.Examples([[p] for p in persons], inputs=[person], label="Example persons (public-domain photos "
                            "from installed packages)")
            gr.Examples([[p] for p in garment_examples()], inputs=[garment], label="Example garments (drawn)")

        gr.Markdown("## 2. Check the mask")
        with gr.Row():
            editor = gr.ImageEditor(label="Mask (red = region to generate): brush adds, eraser removes",
                                    type="numpy", image_mode="RGBA", sources=(), transforms=(), layers=False,
                                    brush=gr.Brush(colors=[BRUSH_COLOUR], color_mode="fixed", default_size=14),
                                    eraser=gr.Eraser(default_size=14), elem_id="mask-editor", height=560,
                                    canvas_size=(info.size[1], info.size[0]))
            with gr.Column():
                with gr.Row():
                    pose_img = gr.Image(label="Pose", interactive=False, elem_id="pose", height=260)
                    parsing_img = gr.Image(label="Parsing", interactive=False, elem_id="parsing", height=260)
                    dp_img = gr.Image(label="DensePose", interactive=False, elem_id="densepose", height=260)
                with gr.Row():
                    agn_img = gr.Image(label="Agnostic (automatic mask)", interactive=False, elem_id="agnostic",
                                       height=260)
                    garment_canvas = gr.Image(label="Garment as the model sees it", interactive=False,
                                              elem_id="garment-canvas", height=260)
                prep_info = gr.Markdown(elem_id="prep-info")

        with gr.Accordion("Advanced settings", open=False):
            with gr.Row():
                steps = gr.Slider(1, 100, value=default_steps, step=1, label="Steps", elem_id="steps")
                sampler = gr.Radio(list(SAMPLERS), value=default_sampler, label="Sampler (plms is the official one)",
                                   info="Default DPM-Solver++ 15 steps: 15 model calls, about half of PLMS 30's "
                                        "time; on the demo model its result differs from the official PLMS 50 by "
                                        "3.7/255 in the garment region (PLMS 30: 1.9). For the official setting "
                                        "choose plms with 50 steps.")
                guidance = gr.Slider(1.0, 10.0, value=info.guidance, step=0.1,
                                     label="Guidance (1 = none, the official StableVITON setting)")
            with gr.Row():
                seed = gr.Number(value=42, precision=0, label="Seed", elem_id="seed")
                random_seed = gr.Checkbox(value=False, label="Random seed")
                repaint = gr.Checkbox(value=True, label="Repaint (keep your own pixels outside the mask)")
                samples = gr.Slider(1, 4, value=1, step=1, label="Number of samples")
        tryon_btn = gr.Button("Try on", variant="primary", elem_id="tryon-btn", interactive=info.can_try_on)

        gr.Markdown("## 3. Result")
        live = gr.Image(label="Live preview while sampling (the latent through a fixed colour map, not decoded)",
                        interactive=False, elem_id="live-preview", format="png", height=260)
        with gr.Row():
            before_after = gr.ImageSlider(label="Before / after (your photo's own size)", type="numpy",
                                          elem_id="before-after", format="png")
            gallery = gr.Gallery(label="Results", elem_id="results", format="png", columns=2, height=420)
        with gr.Row():
            download = gr.File(label="Download (PNG, full resolution)", file_count="multiple", elem_id="download")
            run_info = gr.Markdown(elem_id="run-info")

        gr.Markdown("## 4. Attention inspector\nClick any point of the result: the right panel shows the zero "
                    f"cross-attention map of that query token ({mh}x{mw} grid, averaged over heads) on the garment.")
        with gr.Row():
            block = gr.Radio(list(info.blocks), value=info.default_block, label=f"Warp block ({mh}x{mw} maps)",
                             elem_id="block")
            step_pos = gr.Slider(0, 1, value=0, step=1, label="Captured sampling step", elem_id="step-pos")
            sample = gr.Slider(0, 3, value=0, step=1, label="Sample", elem_id="sample")
        with gr.Row():
            inspect_result = gr.Image(label="Result (click a point)", interactive=False, elem_id="inspect-result",
                                      format="png", height=512)
            point_map = gr.Image(label="Where the model looked on the garment", interactive=False,
                                 elem_id="point-map", format="png", height=512)
        point_info = gr.Markdown(elem_id="point-info")
        grid = gr.Image(label="Query tokens spread over the mask: location | map on the garment",
                        interactive=False, elem_id="attention-grid", format="png")
        gr.Markdown("**Correspondence**: for every query token in the mask, the attention-weighted centre on the "
                    "garment (what the attention total-variation loss smooths).")
        with gr.Row():
            resampled = gr.Image(label="Garment resampled at the attention centres", interactive=False,
                                 elem_id="resampled", format="png")
            coords = gr.Image(label="Centre coordinates (red = column, green = row)", interactive=False,
                              elem_id="coords", format="png")
            legend = gr.Image(label="Colour key on the garment", interactive=False, elem_id="legend", format="png")
        sharp_info = gr.Markdown(elem_id="sharpness")

        # ---- hidden components of the stable API endpoint `tryon` --------------------------------------
        with gr.Column(visible=False):
            # defaults are the page's; values are checked (clear errors, no clamping) by the studio
            api_person = PhotoInput(type="filepath", label="person photo")
            api_garment = PhotoInput(type="filepath", label="garment photo")
            api_steps = gr.Number(value=default_steps, label="sampling steps (1-100; PLMS/DDIM on the official grid)")
            api_seed = gr.Number(value=42, label="seed (-1 = random)")
            api_sampler = gr.Dropdown(list(SAMPLERS), value=default_sampler, label="sampler (plms = official)")
            api_guidance = gr.Number(value=info.guidance,
                                     label="classifier-free guidance scale (1 = none, official; up to 10)")
            api_repaint = gr.Checkbox(value=True, label="repaint: keep the photo's own pixels outside the mask")
            api_mask = PhotoInput(type="filepath", label="mask (optional; white = generate; photo or canvas size)")
            api_attention = gr.Checkbox(value=False, label="return the attention maps (npz)")
            api_image = gr.Image(type="filepath", format="png", label="result")
            api_att_file = gr.File(label="attention (npz)")
            api_info = gr.JSON(label="info")
            api_btn = gr.Button("tryon", visible=False)

        # ---- handlers -------------------------------------------------------------------------------------
        @guarded("Prepare")
        def on_prepare(person, garment, parser="auto", progress=gr.Progress()):
            if not person:
                raise gr.Error(NO_PERSON_PHOTO)
            if not garment:
                raise gr.Error(NO_GARMENT_PHOTO)
            p, g = studio.prepare(person, garment, reporter(progress), parser=parser or "auto")
            panels = studio.panels(p, g)
            warns = p.warnings + g.warnings
            if warns:
                gr.Warning(f"{len(warns)} note(s) about your photos: see the list under the panels.")
            text = (f"Framed at {p.size[1]}x{p.size[0]} from your {p.original.size[0]}x{p.original.size[1]} photo; "
                    f"parser `{p.parser_backend}`, DensePose `{p.densepose_backend}`; "
                    f"mask {int((p.agnostic_mask > 0).sum())} px. Timings: {_fmt_timings(p.timings)}.")
            if warns:
                text += "\n\n" + "\n".join(f"- {w}" for w in warns)
            return (editor_value(p.image, p.agnostic_mask), panels["pose"], panels["parsing"], panels["densepose"],
                    panels["agnostic"], panels["garment"], text, (p, g))

        prepare_btn.click(on_prepare, [person, garment, parser_choice],
                          [editor, pose_img, parsing_img, dp_img, agn_img, garment_canvas, prep_info, prep_state],
                          concurrency_limit=2, api_name="prepare")

        def inspector(run, blk, step_p, smp, query):
            blk, step_p, smp = int(blk), int(step_p), min(int(smp), len(run.results) - 1)
            step_p = min(step_p, len(run.steps) - 1)
            marked, heat, m = studio.point_view(run, blk, step_p, smp, query)
            (kh, kw) = run.sizes[blk][1]
            peak = np.unravel_index(int(np.argmax(m)), m.shape)
            s = run.steps[step_p]
            text = (f"Query token (row {query[0]}, col {query[1]}) of {run.sizes[blk][0][0]}x{run.sizes[blk][0][1]}; "
                    f"block {blk}, step {s + 1}/{run.total_steps} (t = {run.timesteps[step_p]}). "
                    f"Peak on the garment at key (row {peak[0]}, col {peak[1]}) of {kh}x{kw}, p = {float(m.max()):.3f}.")
            return marked, heat, text

        def views(run, blk, step_p, smp):
            blk, smp = int(blk), min(int(smp), len(run.results) - 1)
            step_p = min(int(step_p), len(run.steps) - 1)
            g = studio.grid_view(run, blk, step_p, smp)
            res, cimg, leg, sh = studio.correspondence_view(run, blk, step_p, smp)
            text = (f"Sharpness over {sh['queries']} masked tokens (block {blk}, step {run.steps[step_p] + 1}/"
                    f"{run.total_steps}): mean entropy {sh['entropy']:.2f} nats ({100 * sh['entropy_fraction']:.0f}% "
                    f"of a uniform map), mean spread {sh['spread']:.2f} key cells, mean peak {sh['peak']:.3f}.")
            return g, res, cimg, leg, text

        @guarded("Try on")
        def on_tryon(prep, edited, n_steps, smp_name, guide, seed_v, rnd, rep, n_samples, progress=gr.Progress()):
            if prep is None:
                raise gr.Error(NOT_PREPARED)
            p, g = prep
            mask = mask_from_editor(edited, p.size)
            previews: queue.Queue = queue.Queue()
            done: dict = {}

            def work():  # sampling runs here; this handler streams its previews to the page meanwhile
                try:
                    done["out"] = studio.try_on(p, g, mask, steps=n_steps, sampler=smp_name, guidance=guide,
                                                seed=None if rnd else seed_v, repaint=rep, samples=n_samples,
                                                report=reporter(progress), preview=previews.put)
                except Exception as e:  # noqa: BLE001 - re-raised below, in the handler
                    done["error"] = e
                finally:
                    previews.put(None)

            threading.Thread(target=work, daemon=True, name="tryon").start()
            last_preview = None
            while (image := previews.get()) is not None:
                k = max(1, 384 // image.shape[0])  # small canvases (the demo's 128x96) enlarged, nearest
                last_preview = image = np.repeat(np.repeat(image, k, axis=0), k, axis=1)
                yield (gr.update(),) * N_TRYON_OUTPUTS + (image,)
            if "error" in done:
                raise done["error"]
            out = done["out"]
            run = out["run"]
            files = [studio.save_png(im, f"tryon_seed{out['seed']}_{i}") for i, im in enumerate(out["full"])]
            edit = (f"mask edited: +{out['mask_added']} / -{out['mask_removed']} px"
                    if out["mask_added"] or out["mask_removed"] else "automatic mask")
            info_text = (f"Seed used: **{out['seed']}** · {out['steps']} steps {out['sampler']} "
                         f"({out['model_calls']} model calls) · "
                         f"{out['samples']} sample(s) · {out['seconds']:.1f} s · {edit} · result "
                         f"{out['full'][0].size[0]}x{out['full'][0].size[1]} (your photo's size).")
            query = viz.spread_queries(run.query_mask, 1)[0]
            last = len(run.steps) - 1
            marked, heat, ptext = inspector(run, info.default_block, last, 0, query)
            g_img, res, cimg, leg, stext = views(run, info.default_block, last, 0)
            before = np.asarray(out["person"].original.convert("RGB"))
            yield (
                (before, np.asarray(out["full"][0])), [np.asarray(x) for x in out["full"]], files, info_text, run,
                query, marked, heat, ptext, g_img, res, cimg, leg, stext,
                gr.update(maximum=max(last, 1), value=last, interactive=last > 0), gr.update(value=info.default_block),
                gr.update(value=0, maximum=max(len(run.results) - 1, 1), interactive=len(run.results) > 1), out["seed"],
                last_preview if last_preview is not None else gr.update(),
            )

        tryon_btn.click(
            on_tryon, [prep_state, editor, steps, sampler, guidance, seed, random_seed, repaint, samples],
            [before_after, gallery, download, run_info, run_state, query_state, inspect_result, point_map, point_info,
             grid, resampled, coords, legend, sharp_info, step_pos, block, sample, seed, live],
            concurrency_id="gpu", concurrency_limit=1, api_name=False)

        @guarded("Inspector")
        def on_select(run, blk, step_p, smp, evt: gr.SelectData):
            if run is None:
                raise gr.Error(NO_RESULT)
            x, y = evt.index[0], evt.index[1]
            res = run.shown(run.results[min(int(smp), len(run.results) - 1)])  # the image that was clicked
            query = viz.query_from_xy(x, y, (res.shape[1], res.shape[0]), run.sizes[int(blk)][0])
            return (query, *inspector(run, blk, step_p, smp, query))

        inspect_result.select(on_select, [run_state, block, step_pos, sample],
                              [query_state, inspect_result, point_map, point_info], concurrency_limit=4, api_name=False)

        @guarded("Inspector")
        def on_change(run, blk, step_p, smp, query):
            if run is None:
                return [gr.update()] * 8
            return (*inspector(run, blk, step_p, smp, query), *views(run, blk, step_p, smp))

        for comp in (block, step_pos, sample):
            comp.change(on_change, [run_state, block, step_pos, sample, query_state],
                        [inspect_result, point_map, point_info, grid, resampled, coords, legend, sharp_info],
                        concurrency_limit=4, api_name=False, show_progress="hidden")

        @guarded("Try-on API")
        def on_api(person, garment, steps, seed, sampler, guidance_scale, repaint, mask, return_attention,
                   progress=gr.Progress()):
            if not person:
                raise gr.Error(NO_PERSON_PHOTO)
            if not garment:
                raise gr.Error(NO_GARMENT_PHOTO)
            return studio.api_tryon(person, garment, steps=steps, seed=seed, sampler=sampler,
                                    guidance=guidance_scale, repaint=bool(repaint), mask=mask or None,
                                    return_attention=bool(return_attention), report=reporter(progress))

        api_btn.click(on_api, [api_person, api_garment, api_steps, api_seed, api_sampler, api_guidance, api_repaint,
                               api_mask, api_attention], [api_image, api_att_file, api_info],
                      api_name="tryon", concurrency_id="gpu", concurrency_limit=1)
    return demo
