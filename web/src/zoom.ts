/**
 * Zoom, pan and swipe on the viewer's picture, with pointer events (mouse, pen and touch alike):
 * double-click or double-tap zooms in at that point (and back out), two fingers pinch, the wheel
 * zooms, a drag pans a zoomed picture, and a horizontal swipe on an unzoomed one goes to the
 * next or previous photo.
 */

export interface Zoom {
	readonly scale: number;
	/** Zooms by `factor` around the stage's centre (the zoom buttons and keys). */
	by(factor: number): void;
	reset(): void;
	/** Sizes the picture to fit the stage (on open, on a new photo, on resize). */
	fit(width: number, height: number): void;
}

const MAX_SCALE = 8;
const SWIPE_PX = 50;

export function zoomable(stage: HTMLElement, picture: HTMLElement, on: { swipe(direction: 1 | -1): void; change(scale: number): void }): Zoom {
	let scale = 1;
	let x = 0;
	let y = 0;
	let size = { width: 0, height: 0 };
	const pointers = new Map<number, { x: number; y: number }>();
	let pinch: { distance: number; scale: number } | null = null;
	let swipe: { x: number; y: number } | null = null;

	function apply(animate = false): void {
		const box = stage.getBoundingClientRect();
		// A zoomed picture may move until its edge meets the stage's edge, no further.
		const maxX = Math.max(0, (size.width * scale - box.width) / 2);
		const maxY = Math.max(0, (size.height * scale - box.height) / 2);
		if (!swipe) x = Math.min(maxX, Math.max(-maxX, x));
		y = Math.min(maxY, Math.max(-maxY, y));
		picture.classList.toggle("animate", animate);
		picture.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
		stage.classList.toggle("zoomed", scale > 1);
		on.change(scale);
	}

	/** Zooms to `next`, keeping the point under (clientX, clientY) where it is. */
	function zoomTo(next: number, clientX: number, clientY: number, animate = false): void {
		next = Math.min(MAX_SCALE, Math.max(1, next));
		const box = stage.getBoundingClientRect();
		const px = clientX - (box.left + box.width / 2);
		const py = clientY - (box.top + box.height / 2);
		x = px - ((px - x) * next) / scale;
		y = py - ((py - y) * next) / scale;
		scale = next;
		if (scale === 1) x = y = 0;
		apply(animate);
	}

	const centre = () => {
		const box = stage.getBoundingClientRect();
		return [box.left + box.width / 2, box.top + box.height / 2] as const;
	};

	stage.addEventListener("dblclick", event => zoomTo(scale > 1 ? 1 : 2.5, event.clientX, event.clientY, true));
	stage.addEventListener(
		"wheel",
		event => {
			event.preventDefault();
			zoomTo(scale * Math.exp(-event.deltaY / 300), event.clientX, event.clientY);
		},
		{ passive: false }
	);

	stage.addEventListener("pointerdown", event => {
		if ((event.target as Element).closest("button, a")) return;
		try {
			stage.setPointerCapture(event.pointerId);
		} catch {
			// Not a pointer the browser tracks (a synthetic one): it still works, uncaptured.
		}
		pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
		if (pointers.size === 2) {
			const [a, b] = [...pointers.values()];
			pinch = { distance: Math.hypot(a.x - b.x, a.y - b.y), scale };
			swipe = null;
		} else if (pointers.size === 1 && scale === 1) swipe = { x: event.clientX, y: event.clientY };
	});

	stage.addEventListener("pointermove", event => {
		const last = pointers.get(event.pointerId);
		if (!last) return;
		const current = { x: event.clientX, y: event.clientY };
		pointers.set(event.pointerId, current);
		if (pinch && pointers.size === 2) {
			const [a, b] = [...pointers.values()];
			zoomTo((pinch.scale * Math.hypot(a.x - b.x, a.y - b.y)) / pinch.distance, (a.x + b.x) / 2, (a.y + b.y) / 2);
		} else if (swipe) {
			// The picture follows the finger sideways, as a hint of where it goes.
			x = current.x - swipe.x;
			apply();
		} else if (scale > 1) {
			x += current.x - last.x;
			y += current.y - last.y;
			apply();
		}
	});

	const release = (event: PointerEvent) => {
		if (!pointers.delete(event.pointerId)) return;
		if (pointers.size < 2) pinch = null;
		if (swipe && pointers.size === 0) {
			const dx = event.clientX - swipe.x;
			const dy = event.clientY - swipe.y;
			swipe = null;
			x = 0;
			apply(true);
			if (Math.abs(dx) > SWIPE_PX && Math.abs(dx) > Math.abs(dy)) on.swipe(dx < 0 ? 1 : -1);
		}
	};
	stage.addEventListener("pointerup", release);
	stage.addEventListener("pointercancel", release);

	return {
		get scale() {
			return scale;
		},
		by: factor => zoomTo(scale * factor, ...centre(), true),
		reset() {
			scale = 1;
			x = y = 0;
			apply();
		},
		fit(width, height) {
			const box = stage.getBoundingClientRect();
			const ratio = Math.min(box.width / width, box.height / height, 1);
			size = { width: Math.round(width * ratio), height: Math.round(height * ratio) };
			picture.style.width = `${size.width}px`;
			picture.style.height = `${size.height}px`;
			apply();
		}
	};
}
